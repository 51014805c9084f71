"""The decide loop over in-package client doubles: rebalances and failed writes still leave
every event decided exactly once; events that already waited in Kafka do not wait again."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from workers.decide_loop import DecisionLoop
from workers.kafka_client import ClientError
from workers.testing import FakeLogConsumer, FakeTxnProducer, loop_over, valid_event


def _loop(
    consumer: FakeLogConsumer, producer: FakeTxnProducer, *, transaction_max_events: int = 0
) -> DecisionLoop:
    loop: DecisionLoop = loop_over(
        consumer,
        producer,
        max_batch_size=50,
        max_wait_ms=10_000,
        transaction_max_events=transaction_max_events,
        transaction_max_ms=60_000,
        transaction_timeout_ms=120_000,
        cooperative_rebalancing=consumer.cooperative,
    )
    return loop


def _decided(
    loop: DecisionLoop, producer: FakeTxnProducer, polls: int, shutdown: bool = True
) -> Counter[str]:
    """Run the loop for ``polls`` polls (then stop it) and count committed decisions by id."""
    for _ in range(polls):
        loop._run_once()
    if shutdown:
        loop._shutdown()
    else:
        loop._settle()  # a commit still in flight (pipelined) has its outcome
    return Counter(json.loads(v)["event_id"] for t, v in producer.committed if t == "decisions")


def _events(n: int, partition: int) -> list[bytes]:
    return [json.dumps(valid_event(partition * 1000 + i)).encode() for i in range(n)]


def test_revoked_and_reassigned_partition_is_reread_not_skipped() -> None:
    consumer = FakeLogConsumer({0: _events(80, 0), 1: _events(80, 1)})
    # poll 1 buffers 40 records (batch not full); poll 2 revokes both and hands back both
    consumer.rebalance_on_poll = {2: ([0, 1], [0, 1])}
    producer = FakeTxnProducer()
    loop = _loop(consumer, producer)
    consumer.first_poll_max = 20
    decided = _decided(loop, producer, polls=20)
    assert set(decided) == {f"evt-{p * 1000 + i}" for p in (0, 1) for i in range(80)}
    assert max(decided.values()) == 1
    assert {tp[1]: off for tp, off in producer.offsets.items()} == {0: 80, 1: 80}


def test_partition_moved_away_is_left_to_its_new_owner() -> None:
    consumer = FakeLogConsumer({0: _events(30, 0), 1: _events(30, 1)})
    consumer.rebalance_on_poll = {2: ([0, 1], [1])}
    producer = FakeTxnProducer()
    loop = _loop(consumer, producer)
    consumer.first_poll_max = 10
    decided = _decided(loop, producer, polls=10)
    assert set(decided) == {f"evt-{1000 + i}" for i in range(30)}  # partition 0 not ours now
    assert max(decided.values()) == 1
    assert {tp[1] for tp in producer.offsets} == {1}


def test_position_reset_on_reassignment_does_not_decide_twice() -> None:
    consumer = FakeLogConsumer({0: _events(80, 0), 1: _events(80, 1)})
    consumer.rebalance_on_poll = {2: ([0, 1], [0, 1])}
    producer = FakeTxnProducer()
    consumer.reset_to = lambda p: next(
        (off for tp, off in producer.offsets.items() if tp[1] == p), 0
    )
    loop = _loop(consumer, producer)
    consumer.first_poll_max = 20
    decided = _decided(loop, producer, polls=20)
    assert set(decided) == {f"evt-{p * 1000 + i}" for p in (0, 1) for i in range(80)}
    assert max(decided.values()) == 1, "records re-read after a reset were decided twice"


def test_records_failed_inside_a_transaction_are_not_committed_past() -> None:
    consumer = FakeLogConsumer({0: _events(120, 0)})
    producer = FakeTxnProducer()
    producer.fail_sends = 10  # the first batch's writes fail, the transaction would not
    loop = _loop(consumer, producer)
    decided = _decided(loop, producer, polls=10)
    assert set(decided) == {f"evt-{i}" for i in range(120)}, "a decision was lost"
    assert max(decided.values()) == 1
    assert producer.aborts == 1


def test_events_that_already_waited_in_kafka_are_decided_at_once() -> None:
    # max_wait is 10 s; these events were produced 20 s before the worker polled them
    consumer = FakeLogConsumer({0: _events(5, 0)}, produced_ago_ms=20_000)
    producer = FakeTxnProducer()
    loop = _loop(consumer, producer)
    loop._run_once()
    loop._settle()
    assert sum(t == "decisions" for t, _ in producer.committed) == 5


def test_fresh_events_wait_for_their_batch_to_fill_or_time_out() -> None:
    consumer = FakeLogConsumer({0: _events(5, 0)})
    producer = FakeTxnProducer()
    loop = _loop(consumer, producer)
    loop._run_once()
    assert producer.committed == [] and len(loop.batcher) == 5


def test_a_rebalance_completes_while_a_ready_batch_waits() -> None:
    # the batch is ready (old events) when partitions are revoked: the loop must still give
    # the client time to rejoin, or it spins on poll(0) and the partitions stall for good
    consumer = FakeLogConsumer({0: _events(30, 0), 1: _events(30, 1)}, produced_ago_ms=20_000)
    consumer.rebalance_after_poll = {1: ([0, 1], [0, 1])}
    producer = FakeTxnProducer()
    loop = _loop(consumer, producer)
    consumer.first_poll_max = 10
    decided = _decided(loop, producer, polls=10, shutdown=False)
    assert len(decided) == 60 and max(decided.values()) == 1


def test_a_rebalance_that_never_finishes_rebuilds_the_clients() -> None:
    consumer = FakeLogConsumer({0: _events(30, 0)})
    consumer.rebalance_after_poll = {1: ([0], [0])}
    consumer.rejoin_never_completes = True
    producer = FakeTxnProducer()
    loop = _loop(consumer, producer)
    loop.settings = loop.settings.model_copy(update={"rejoin_timeout_s": 0.05})
    loop._run_once()  # the rebalance starts
    loop._run_once()  # still under way: wait
    time.sleep(0.06)
    with pytest.raises(ClientError, match="rebalance not finished"):
        loop._run_once()
    loop._reset_clients()  # what run() does on a ClientError; then it builds new clients
    assert not loop.tracker.pending and len(loop.batcher) == 0


def test_cooperative_revocation_keeps_deciding_the_partitions_kept() -> None:
    # a transaction spans batches; partition 0 moves to another worker mid-transaction
    consumer = FakeLogConsumer({0: _events(100, 0), 1: _events(100, 1)}, produced_ago_ms=20_000)
    consumer.cooperative = True
    consumer.rebalance_after_poll = {2: ([0], [])}  # 0 revoked, nothing assigned after it
    producer = FakeTxnProducer()
    loop = _loop(consumer, producer, transaction_max_events=1_000)
    assert loop.tracker.incremental
    decided = _decided(loop, producer, polls=8)
    assert not loop.tracker.pending, "waited for an assignment that never comes"
    mine = {f"evt-{1000 + i}" for i in range(100)}
    theirs = {f"evt-{i}" for i in range(100)}
    assert mine <= set(decided), "a kept partition stopped being decided"
    assert max(decided.values()) == 1
    # nothing of the moved partition past what committed before the revocation: it was ours
    # only until then, and the open transaction that held more of it was aborted
    assert not set(decided) & theirs
    assert producer.aborts == 1
    assert {tp[1] for tp in producer.offsets} == {1}


def test_cooperative_assignment_adds_partitions_without_pausing_the_others() -> None:
    consumer = FakeLogConsumer({0: _events(60, 0), 1: _events(60, 1)}, produced_ago_ms=20_000)
    consumer.cooperative = True
    consumer.assigned = {1}
    consumer.rebalance_after_poll = {2: ([], [0])}  # partition 0 comes in from another worker
    consumer.reset_to = lambda p: 10 if p == 0 else 0  # its committed offset
    producer = FakeTxnProducer()
    loop = _loop(consumer, producer, transaction_max_events=1_000)
    decided = _decided(loop, producer, polls=8)
    assert set(decided) == {f"evt-{1000 + i}" for i in range(60)} | {
        f"evt-{i}" for i in range(10, 60)
    }
    assert max(decided.values()) == 1 and producer.aborts == 0


def test_every_committed_decision_feeds_the_latency_histogram() -> None:
    from workers.metrics import E2E_LATENCY

    consumer = FakeLogConsumer({0: _events(70, 0)}, produced_ago_ms=20_000)
    producer = FakeTxnProducer()
    loop = _loop(consumer, producer)
    child = E2E_LATENCY.labels(loop.flow)
    before = int(child.counts.sum())
    decided = _decided(loop, producer, polls=3)
    assert int(child.counts.sum()) - before == sum(decided.values()) == 70
