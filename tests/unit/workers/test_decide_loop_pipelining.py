"""Pipelined commits: the loop decides the next batch while a transaction commits on its own
thread, and still writes every event exactly once when a commit in flight fails or the
partitions move meanwhile."""

from __future__ import annotations

import json
import threading
from collections import Counter

from workers.decide_loop import DecisionLoop
from workers.engine import BatchResult, RawRecord
from workers.kafka_client import TP, ClientError
from workers.testing import FakeLogConsumer, FakeTxnProducer, loop_over, valid_event


class GatedProducer(FakeTxnProducer):
    """Commits wait for ``gate``; ``fail_commits`` next commits fail (fenced)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.fail_commits = 0

    def commit_transaction(self) -> None:
        assert self.gate.wait(10), "the commit was never let through"
        if self.fail_commits > 0:
            self.fail_commits -= 1
            raise ClientError("ProducerFencedError: there is a newer producer")
        super().commit_transaction()


def _loop(consumer: FakeLogConsumer, producer: FakeTxnProducer, pipelined: bool) -> DecisionLoop:
    loop: DecisionLoop = loop_over(
        consumer,
        producer,
        max_batch_size=50,
        max_wait_ms=10_000,
        transaction_max_events=0,  # a transaction per batch
        pipeline_commits=pipelined,
        cooperative_rebalancing=False,
    )
    loop._stop.wait = lambda _s=None: False  # type: ignore[method-assign]  # no real back-off
    return loop


def _events(n: int, first: int = 0) -> list[bytes]:
    return [json.dumps(valid_event(first + i)).encode() for i in range(n)]


def _decided(producer: FakeTxnProducer) -> Counter[str]:
    return Counter(json.loads(v)["event_id"] for t, v in producer.committed if t == "decisions")


def _commits_seen_by_the_second_batch(pipelined: bool) -> int:
    consumer = FakeLogConsumer({0: _events(100)}, produced_ago_ms=20_000)
    consumer.first_poll_max = 50
    producer = GatedProducer()
    loop = _loop(consumer, producer, pipelined)
    process, seen = loop.engine.process, []

    def spy(batch: list[RawRecord]) -> BatchResult:
        if batch and batch[0].offset == 50:  # batch 2
            seen.append(producer.commits)  # how many commits were through by then
            producer.gate.set()
        return process(batch)

    loop.engine.process = spy  # type: ignore[method-assign]
    if not pipelined:
        producer.gate.set()  # a commit in line would otherwise wait for ever
    for _ in range(4):
        loop._run_once()
    loop._shutdown()
    decided = _decided(producer)
    assert set(decided) == {f"evt-{i}" for i in range(100)} and max(decided.values()) == 1
    return seen[0]


def test_the_next_batch_is_decided_while_the_last_transaction_commits() -> None:
    assert _commits_seen_by_the_second_batch(pipelined=True) == 0
    assert _commits_seen_by_the_second_batch(pipelined=False) == 1  # without: one by one


def test_a_commit_that_fails_in_flight_is_decided_again_with_the_batch_after_it() -> None:
    consumer = FakeLogConsumer({0: _events(150)}, produced_ago_ms=20_000)
    producer = GatedProducer()
    producer.fail_commits = 1
    producer.gate.set()
    loop = _loop(consumer, producer, pipelined=True)
    for _ in range(10):
        loop._run_once()
    loop._shutdown()
    decided = _decided(producer)
    assert set(decided) == {f"evt-{i}" for i in range(150)}, "a decision was lost"
    assert max(decided.values()) == 1
    assert producer.aborts == 1 and producer.offsets == {("events", 0): 150}


def test_partitions_move_only_once_the_commit_in_flight_is_through() -> None:
    consumer = FakeLogConsumer({0: _events(60), 1: _events(60, 1000)}, produced_ago_ms=20_000)
    consumer.rebalance_on_poll = {2: ([0, 1], [1])}  # while batch 1 commits, 0 moves away
    producer = GatedProducer()
    loop = _loop(consumer, producer, pipelined=True)
    revoke, at_revocation = loop.tracker.on_revoked, []

    def on_revoked(partitions: list[TP]) -> None:
        threading.Timer(0.2, producer.gate.set).start()  # the broker answers a bit later
        revoke(partitions)
        at_revocation.append(producer.commits)  # what had committed when we let go

    loop.tracker.on_revoked = on_revoked  # type: ignore[method-assign]
    for _ in range(8):
        loop._run_once()
    loop._shutdown()
    assert at_revocation == [1], "partitions were let go with their commit still in flight"
    decided = _decided(producer)
    assert max(decided.values()) == 1
    assert {f"evt-{1000 + i}" for i in range(60)} <= set(decided)  # ours throughout
