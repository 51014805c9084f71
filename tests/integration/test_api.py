"""The HTTP decision API against the real stack: uvicorn in-process on a loopback port, the
real Kafka bridge on fresh topics, and a real decide loop (``deciding``) making the decisions.
Requests go through the Python client (``workers.client``)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn
from pydantic import SecretStr

from devtools.launch import free_port
from tests.integration.streaming import deciding, make_topics, read_committed
from workers.api.app import build_app
from workers.client import ApiError, DecisionClient, InvalidEventError, Pending
from workers.decide_loop import DecisionLoop
from workers.settings import ApiOptions, ApiSettings, Topics, WorkerSettings
from workers.testing import valid_event

KEY = "integration-key-0123456789"


@contextmanager
def serving(topics: Topics, **api: Any) -> Iterator[str]:
    """``decisionflow serve``'s app (Kafka bridge, workers' validation) on a free port."""
    options: dict[str, Any] = {"keys": {"it": SecretStr(KEY)}, "feature_spec": "credit_data", **api}
    settings = ApiSettings(topics=topics, api=ApiOptions(**options), database_url=None)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(build_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive(), "the API did not start (see the log above)"
        assert time.monotonic() < deadline, "the API did not start in 60 s"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def _worker(topics: Topics, group_id: str) -> WorkerSettings:
    return WorkerSettings(topics=topics, group_id=group_id, max_batch_size=100, max_wait_ms=20)


def _assigned(loop: DecisionLoop, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not loop.tracker.assigned:
        assert time.monotonic() < deadline, "the decide loop got no partitions"
        time.sleep(0.1)


def _ready(url: str, timeout: float = 30) -> dict[str, Any]:
    """/readyz's body once it says ready (or the last one after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=10) as resp:
                body: dict[str, Any] = json.loads(resp.read())
        except urllib.error.HTTPError as err:  # 503: not ready (yet)
            body = json.loads(err.read())
        if body["ready"] or time.monotonic() > deadline:
            return body
        time.sleep(0.5)


def _committed(bootstrap: str, topic: str, event_id: object) -> list[dict[str, Any]]:
    """The committed records of ``event_id`` on ``topic`` (read again while none is seen:
    a slow broker may let the reader's idle timeout pass before its first fetch)."""
    deadline = time.monotonic() + 60
    while True:
        found = [r for r in read_committed(bootstrap, topic) if r["event_id"] == event_id]
        if found or time.monotonic() > deadline:
            return found


def _event(i: int, amount: float = 3000.0) -> dict[str, object]:
    return {**valid_event(i, amount), "event_id": f"api-{i}-{time.time_ns()}"}


def test_post_returns_the_workers_decision_with_reasons(
    make_topic: Callable[..., str], group_id: str
) -> None:
    topics = make_topics(make_topic)
    with (
        serving(topics, wait_s=15) as url,
        DecisionClient(url, KEY) as client,
        deciding(_worker(topics, group_id), f"test-{group_id}") as (loop, _),
    ):
        _assigned(loop)
        event = _event(1)  # Amount 3000: the double's score 0.6, a renter's decline
        t0 = time.monotonic()
        decision = client.decide(event)
        took = time.monotonic() - t0
        ready = _ready(url)
    assert isinstance(decision, dict), decision
    assert decision["event_id"] == event["event_id"] and decision["decision"] == "decline"
    assert "R12" in [r["code"] for r in decision["reasons"]]  # the Amount reason
    assert took < 15
    assert ready["ready"] is True and ready["assigned"] is True


def test_the_same_event_id_twice_is_one_decision(
    bootstrap: str, make_topic: Callable[..., str], group_id: str
) -> None:
    topics = make_topics(make_topic)
    event = _event(2)
    with (
        serving(topics, wait_s=15) as url,
        DecisionClient(url, KEY) as client,
        deciding(_worker(topics, group_id), f"test-{group_id}") as (loop, _),
    ):
        _assigned(loop)
        first = client.decide(event)
        again = client.decide(event)
        after_wait = client.get(str(event["event_id"]))
    assert isinstance(first, dict) and first == again == after_wait
    assert len(_committed(bootstrap, topics.decisions, event["event_id"])) == 1, "one decision"
    assert len(_committed(bootstrap, topics.events, event["event_id"])) == 1, "published once"


def test_a_time_out_is_202_then_get_returns_the_decision(
    make_topic: Callable[..., str], group_id: str
) -> None:
    topics = make_topics(make_topic)
    event = _event(3)
    with serving(topics, wait_s=0.5) as url, DecisionClient(url, KEY) as client:
        pending = client.decide(event)  # no worker yet: nothing can decide it
        assert isinstance(pending, Pending) and pending.event_id == event["event_id"]
        assert client.get(pending) is None
        with deciding(_worker(topics, group_id), f"test-{group_id}"):
            decision = client.wait(pending, timeout=60)
    assert decision["event_id"] == event["event_id"] and decision["reasons"]


def test_a_worker_dead_letter_ends_the_wait(make_topic: Callable[..., str], group_id: str) -> None:
    topics = make_topics(make_topic)
    event = {**_event(4), "features": {"Amount": 1000, "Colour": "teal"}}
    # the API checks the contract only; the worker's spec refuses the unknown feature
    with (
        serving(topics, wait_s=15, feature_spec="none") as url,
        DecisionClient(url, KEY) as client,
        deciding(_worker(topics, group_id), f"test-{group_id}") as (loop, _),
    ):
        _assigned(loop)
        with pytest.raises(InvalidEventError) as refused:
            client.decide(event)
    assert (refused.value.reason, refused.value.source) == ("unknown_feature", "worker")


def test_bad_payload_missing_key_and_oversize_are_refused(
    bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topics = make_topics(make_topic)
    event = _event(5)
    with serving(topics) as url, DecisionClient(url, KEY) as client:
        with pytest.raises(InvalidEventError) as bad:
            client.decide({**event, "event_time": "yesterday"})
        assert bad.value.status == 422
        assert (bad.value.reason, bad.value.source) == ("validation", "api")
        assert bad.value.message is not None and "event_time" in bad.value.message
        for key in (None, "wrong-key"):
            with DecisionClient(url, key) as stranger, pytest.raises(ApiError) as denied:
                stranger.decide(event)
            assert denied.value.status == 401
        with pytest.raises(ApiError) as oversize:
            client.decide({**event, "producer": "x" * 70_000})
        assert oversize.value.status == 413
    assert read_committed(bootstrap, topics.events, idle_ms=1500) == []
