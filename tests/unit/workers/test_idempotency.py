"""Idempotency by event_id: a repeated event_id gets no second decision, is recorded as a
duplicate pointing at the first, and claims never cost a decision when a record is re-read."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from workers.decide_loop import DecisionLoop
from workers.idempotency import MemoryIdempotency
from workers.settings import WorkerSettings
from workers.testing import (
    FakeLogConsumer,
    FakeTxnProducer,
    fake_engine,
    loop_over,
    valid_event,
)


def _loop(
    consumer: FakeLogConsumer, producer: FakeTxnProducer, claims: MemoryIdempotency
) -> DecisionLoop:
    loop: DecisionLoop = loop_over(
        consumer,
        producer,
        idempotency=claims,
        max_batch_size=50,
        max_wait_ms=0,
        transaction_max_events=0,
    )
    return loop


def _event(i: int) -> bytes:
    return json.dumps(valid_event(i)).encode()


def _out(producer: FakeTxnProducer, topic: str) -> list[dict[str, object]]:
    return [json.loads(v) for t, v in producer.committed if t == topic]


def _run(loop: DecisionLoop, polls: int = 20) -> None:
    for _ in range(polls):
        loop._run_once()
    loop._shutdown()


def test_a_repeated_event_id_is_decided_once_and_recorded_as_a_duplicate() -> None:
    # evt-0..59 on partition 0, then evt-0..9 again; evt-5 once more on partition 1
    logs = {0: [_event(i) for i in range(60)] + [_event(i) for i in range(10)], 1: [_event(5)]}
    producer = FakeTxnProducer()
    _run(_loop(FakeLogConsumer(logs), producer, MemoryIdempotency()))

    decided = Counter(str(d["event_id"]) for d in _out(producer, "decisions"))
    assert set(decided) == {f"evt-{i}" for i in range(60)} and max(decided.values()) == 1
    dups = _out(producer, "decisions.duplicates")
    assert len(dups) == 11
    firsts = {(d["event_id"], d["first"]) for d in dups}
    assert firsts == {(f"evt-{i}", f"events/0/{i}") for i in range(10)}
    assert {d["duplicate"] for d in dups} >= {f"events/0/{60 + i}" for i in range(10)}


def test_a_record_read_again_after_an_aborted_transaction_is_still_decided() -> None:
    producer = FakeTxnProducer()
    producer.fail_sends = 1  # the first transaction fails: its records are re-read
    _run(
        _loop(FakeLogConsumer({0: [_event(i) for i in range(100)]}), producer, MemoryIdempotency())
    )

    decided = Counter(str(d["event_id"]) for d in _out(producer, "decisions"))
    assert producer.aborts >= 1
    assert set(decided) == {f"evt-{i}" for i in range(100)} and max(decided.values()) == 1
    assert _out(producer, "decisions.duplicates") == []


def test_nothing_is_decided_unchecked_while_the_claim_store_is_down() -> None:
    claims = MemoryIdempotency()
    claims.available = False
    producer = FakeTxnProducer()
    loop = _loop(FakeLogConsumer({0: [_event(i) for i in range(100)]}), producer, claims)
    loop._stop.wait = lambda _s=None: False  # type: ignore[method-assign]  # no real back-off
    for _ in range(5):
        loop._run_once()
    assert _out(producer, "decisions") == [], "decided without checking event ids"

    claims.available = True
    _run(loop)
    decided = Counter(str(d["event_id"]) for d in _out(producer, "decisions"))
    assert set(decided) == {f"evt-{i}" for i in range(100)} and max(decided.values()) == 1


def test_claims_expire_after_the_window() -> None:
    claims = MemoryIdempotency(window_s=0.05)
    assert claims.claim(["a"], ["events/0/1"]) == [None]
    assert claims.claim(["a"], ["events/0/2"]) == ["events/0/1"]
    time.sleep(0.06)
    assert claims.claim(["a"], ["events/0/2"]) == [None]


@pytest.mark.parametrize("topic", ["", "decisions.duplicates"])
def test_duplicates_are_counted_with_or_without_their_topic(topic: str) -> None:
    claims = MemoryIdempotency()
    engine = fake_engine(claims)
    consumer = FakeLogConsumer({0: [_event(1), _event(1), _event(2)]})
    consumer.listener = type("L", (), {"on_assigned": print, "on_revoked": print})()
    result = engine.process(consumer.poll(0, 10))
    assert len(result.live) == 2 and [d.first for d in result.duplicates] == ["events/0/0"]
    topics = WorkerSettings(_env_file=None, topics={"duplicates": topic or None}).topics
    written = [t for t, _, _ in result.records(topics)]
    assert written.count("decisions.duplicates") == (1 if topic else 0)


def test_a_stopped_loop_releases_its_claim_store() -> None:
    claims = MemoryIdempotency()
    producer = FakeTxnProducer()
    _run(_loop(FakeLogConsumer({0: [_event(i) for i in range(5)]}), producer, claims))

    assert len(_out(producer, "decisions")) == 5
    assert claims.closed
