"""Transactions that span several model batches (transaction_max_events): fewer commits, and
still every event decided exactly once through rebalances and failed writes."""

from __future__ import annotations

import json
from collections import Counter

from workers.decide_loop import DecisionLoop
from workers.testing import FakeLogConsumer, FakeTxnProducer, loop_over, valid_event


def _loop(
    consumer: FakeLogConsumer,
    producer: FakeTxnProducer,
    txn_events: int = 120,
    when_caught_up: bool = True,
) -> DecisionLoop:
    loop: DecisionLoop = loop_over(
        consumer,
        producer,
        max_batch_size=50,
        max_wait_ms=0,
        transaction_max_events=txn_events,
        transaction_max_ms=60_000,
        transaction_timeout_ms=120_000,  # must outlast the longest transaction
        commit_when_caught_up=when_caught_up,
    )
    return loop


def _events(n: int, partition: int) -> list[bytes]:
    return [json.dumps(valid_event(partition * 1000 + i)).encode() for i in range(n)]


def _decided(producer: FakeTxnProducer) -> Counter[str]:
    return Counter(json.loads(v)["event_id"] for t, v in producer.committed if t == "decisions")


def _expected(n: int, partitions: tuple[int, ...]) -> set[str]:
    return {f"evt-{p * 1000 + i}" for p in partitions for i in range(n)}


def test_a_transaction_spans_batches_until_it_holds_enough_events() -> None:
    consumer = FakeLogConsumer({0: _events(300, 0)})
    producer = FakeTxnProducer()
    loop = _loop(consumer, producer, txn_events=120)
    for _ in range(6):  # six polls, six batches of 50
        loop._run_once()
    loop._settle()  # the last commit may still be in flight (pipelined)
    assert producer.commits == 2  # 150 events, then 300: one commit per 3 batches
    assert producer.offsets == {("events", 0): 300}
    loop._shutdown()
    decided = _decided(producer)
    assert set(decided) == _expected(300, (0,)) and max(decided.values()) == 1


def test_a_transaction_commits_at_once_when_the_loop_has_caught_up() -> None:
    # 120 events, polls of up to 50: the third poll finds only 20, no backlog is left, so the
    # open transaction commits now rather than wait for 5,000 events or 60 s
    for when_caught_up, commits in ((True, 1), (False, 0)):
        consumer = FakeLogConsumer({0: _events(120, 0)})
        producer = FakeTxnProducer()
        loop = _loop(consumer, producer, txn_events=5000, when_caught_up=when_caught_up)
        for _ in range(3):
            loop._run_once()
        loop._settle()
        assert producer.commits == commits, f"commit_when_caught_up={when_caught_up}"
    assert producer.offsets == {}  # nothing committed without it: all still in the open one


def test_one_transaction_per_batch_by_default() -> None:
    consumer = FakeLogConsumer({0: _events(200, 0)})
    producer = FakeTxnProducer()
    loop = _loop(consumer, producer, txn_events=0)
    for _ in range(4):
        loop._run_once()
    loop._settle()
    assert producer.commits == 4


def test_open_transaction_is_requeued_when_partitions_come_straight_back() -> None:
    consumer = FakeLogConsumer({0: _events(200, 0), 1: _events(200, 1)})
    consumer.rebalance_on_poll = {3: ([0, 1], [0, 1])}  # two batches sit in the open txn
    producer = FakeTxnProducer()
    loop = _loop(consumer, producer)
    for _ in range(30):
        loop._run_once()
    loop._shutdown()
    decided = _decided(producer)
    assert set(decided) == _expected(200, (0, 1)), "records of the aborted transaction lost"
    assert max(decided.values()) == 1
    assert producer.aborts >= 1


def test_open_transaction_is_not_decided_twice_when_positions_reset() -> None:
    # confluent-kafka resets a re-assigned partition to its committed offset: the aborted
    # transaction's records are read again and must be decided once, not twice
    consumer = FakeLogConsumer({0: _events(200, 0), 1: _events(200, 1)})
    consumer.rebalance_on_poll = {3: ([0, 1], [0, 1])}
    producer = FakeTxnProducer()
    consumer.reset_to = lambda p: producer.offsets.get(("events", p), 0)
    loop = _loop(consumer, producer)
    for _ in range(30):
        loop._run_once()
    loop._shutdown()
    decided = _decided(producer)
    assert set(decided) == _expected(200, (0, 1))
    assert max(decided.values()) == 1, "an aborted transaction's records were decided twice"


def test_moved_partition_of_an_open_transaction_is_left_to_its_new_owner() -> None:
    consumer = FakeLogConsumer({0: _events(100, 0), 1: _events(100, 1)})
    consumer.rebalance_on_poll = {3: ([0, 1], [1])}
    producer = FakeTxnProducer()
    loop = _loop(consumer, producer)
    for _ in range(20):
        loop._run_once()
    loop._shutdown()
    decided = _decided(producer)
    assert set(decided) == _expected(100, (1,)), "partition 0 belongs to someone else now"
    assert max(decided.values()) == 1
    assert ("events", 0) not in producer.offsets


def test_failed_writes_rewind_every_batch_of_the_transaction() -> None:
    consumer = FakeLogConsumer({0: _events(300, 0)})
    producer = FakeTxnProducer()
    producer.fail_sends = 10  # records of the first batch fail; found at commit, 3 batches on
    loop = _loop(consumer, producer)
    for _ in range(20):
        loop._run_once()
    loop._shutdown()
    decided = _decided(producer)
    assert set(decided) == _expected(300, (0,)), "a decision was lost"
    assert max(decided.values()) == 1
    assert producer.aborts == 1
