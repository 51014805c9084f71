"""The open-loop latency measurement keeps its own process's GC pauses out of the numbers."""

from __future__ import annotations

import gc
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import benchmarks.phase as phase_module
from benchmarks.phase import PhaseRunner
from workers.settings import Topics

pytestmark = pytest.mark.unit


class _Reader:
    def __init__(self) -> None:
        self.count = 0
        self.gc_on_while_waiting: bool | None = None

    def wait_for(self, n: int, timeout: float, alive: Any = None) -> float:
        self.gc_on_while_waiting = gc.isenabled()
        self.count = n
        return 0.0

    def latencies_ms(self, prefix: str, due: Any) -> list[float]:
        return [10.0, 20.0, 30.0]


def _runner() -> PhaseRunner:
    run: Any = SimpleNamespace(bootstrap="stub:9092")
    return PhaseRunner(run, Path("/nonexistent"), {}, ["confluent"], default_client="confluent",
                       phases=["latency"])  # fmt: skip


def test_the_collector_is_off_while_events_are_sent_and_read_and_back_on_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, bool] = {}

    def paced(bootstrap: str, topic: str, events: Any, rate: float, **_: Any) -> Any:
        seen["sending"] = gc.isenabled()
        return 0.0, rate

    monkeypatch.setattr(phase_module, "paced_produce", paced)
    runner = _runner()
    reader = _Reader()
    assert gc.isenabled()
    out = runner._open_loop(Topics(), reader, 100.0, 1.0, "lat50")  # type: ignore[arg-type]
    assert seen == {"sending": False} and reader.gc_on_while_waiting is False
    assert gc.isenabled()
    assert out["p50"] == 20.0 and out["events"] == 100


def test_the_collector_comes_back_on_when_sending_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("broker gone")

    monkeypatch.setattr(phase_module, "paced_produce", broken)
    runner = _runner()
    with pytest.raises(RuntimeError):
        runner._open_loop(Topics(), _Reader(), 100.0, 1.0, "lat50")  # type: ignore[arg-type]
    assert gc.isenabled()
