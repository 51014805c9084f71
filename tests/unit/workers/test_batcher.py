"""Micro-batcher: size and wait limits, draining, dropping revoked partitions."""

from __future__ import annotations

from workers.batcher import MicroBatcher


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_ready_when_full_or_waited_long_enough() -> None:
    clock = Clock()
    b: MicroBatcher[int] = MicroBatcher(3, 50, clock)
    assert not b.ready() and b.poll_timeout_ms() == 100
    b.add([1, 2])
    assert not b.ready() and b.room() == 1 and b.poll_timeout_ms() == 50
    clock.t = 0.049
    assert not b.ready()
    clock.t = 0.05
    assert b.ready() and b.poll_timeout_ms() == 0
    assert b.drain() == [1, 2] and len(b) == 0
    b.add([3, 4, 5, 6])
    assert b.ready()
    assert b.drain() == [3, 4, 5] and b.drain_all() == [6]


def test_drop_removes_matching_records_and_resets_wait() -> None:
    clock = Clock()
    b: MicroBatcher[int] = MicroBatcher(10, 50, clock)
    b.add([1, 2, 3, 4])
    assert b.drop(lambda x: x % 2 == 0) == [2, 4]
    assert b.drain_all() == [1, 3]
    b.add([5])
    assert b.drop(lambda _x: True) == [5]
    clock.t = 10
    assert not b.ready()


def test_records_that_already_waited_close_their_batch_sooner() -> None:
    clock = Clock()
    b: MicroBatcher[int] = MicroBatcher(10, 50, clock)
    b.add([1], waited=0.03)  # produced 30 ms before it was polled
    assert not b.ready() and b.poll_timeout_ms() == 20
    clock.t = 0.01
    b.add([2], waited=0.06)  # an older record from another partition moves the clock back
    assert b.ready() and b.age() >= 0.05
    b.drain()
    b.add([3], waited=-5.0)  # a producer clock ahead of ours: counts from the poll
    assert not b.ready() and b.poll_timeout_ms() == 50


def test_fill_time_counts_from_buffering_not_from_production() -> None:
    clock = Clock()
    clock.t = 100.0
    b: MicroBatcher[int] = MicroBatcher(10, 50, clock)
    b.add([1], waited=86_000.0)  # a backlog record produced a day ago
    assert b.ready() and b.age() >= 86_000
    clock.t = 100.002
    assert abs(b.fill_time() - 0.002) < 1e-9
    b.drain()
    assert b.fill_time() == 0.0
    b.add([2, 3])
    clock.t = 100.012
    assert abs(b.fill_time() - 0.010) < 1e-9
