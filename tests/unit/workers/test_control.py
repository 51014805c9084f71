"""The reload_model control command reaches the deciding runtime, or says there is none."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from workers import runtime
from workers.control import reload_model
from workers.runtime import DecisionRuntime


class Holder:
    version: int | None = 3

    def __init__(self) -> None:
        self.requests = 0

    def request_reload(self) -> None:
        self.requests += 1


class Loop:
    def run(self) -> None: ...

    def stop(self) -> None: ...


@pytest.fixture
def holder() -> Iterator[Holder]:
    holder = Holder()
    runtime.install(DecisionRuntime(Loop(), holder))
    yield holder
    runtime.uninstall()


def test_reload_reaches_the_model_holder(holder: Holder) -> None:
    reply = reload_model(None)
    assert reply == {"ok": "reload requested (deciding with v3)"} and holder.requests == 1


def test_a_worker_without_a_decision_loop_says_so() -> None:
    runtime.uninstall()
    assert reload_model(None) == {"error": "this worker runs no decision loop"}


def test_reload_reaches_every_flow_or_the_one_named() -> None:
    credit, mortgage = Holder(), Holder()
    runtime.install(DecisionRuntime(Loop(), credit), "credit_data")
    runtime.install(DecisionRuntime(Loop(), mortgage), "mortgage")
    try:
        reply = reload_model(None)
        assert reply["ok"].startswith("credit_data: reload requested")
        assert (credit.requests, mortgage.requests) == (1, 1)
        reload_model(None, flow="mortgage")
        assert (credit.requests, mortgage.requests) == (1, 2)
        assert reload_model(None, flow="churn") == {"error": "this worker serves no flow 'churn'"}
    finally:
        runtime.uninstall()
