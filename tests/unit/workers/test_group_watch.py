"""The group watch forces a rebalance only when the same partitions stay unowned in a settled
group over two checks, never for a rebalance's normal between-rounds gap or a failed check."""

from __future__ import annotations

from collections.abc import Iterator

from workers import metrics
from workers.group_watch import GroupView, GroupWatch, StallDetector
from workers.settings import KafkaSettings

STALLED = GroupView(settled=True, unowned=frozenset({0, 1}))
HEALTHY = GroupView(settled=True, unowned=frozenset())


def test_the_same_unowned_partitions_on_two_checks_force_one_rebalance() -> None:
    detector = StallDetector()
    assert [detector.observe(STALLED) for _ in range(5)] == [False, True, False, True, False]


def test_a_gap_that_closes_or_moves_between_checks_is_left_alone() -> None:
    detector = StallDetector()
    moved = GroupView(settled=True, unowned=frozenset({2}))
    views = [STALLED, HEALTHY, STALLED, moved, STALLED]
    assert [detector.observe(v) for v in views] == [False] * 5


def test_a_rebalancing_group_or_a_failed_check_is_never_taken_for_a_stall() -> None:
    detector = StallDetector()
    rebalancing = GroupView(settled=False, unowned=frozenset({0, 1}))
    views = [STALLED, rebalancing, STALLED, None, STALLED]
    assert [detector.observe(v) for v in views] == [False] * 5


def _watch(
    views: list[GroupView | None], fail_rebalance: bool = False
) -> tuple[GroupWatch, list[int]]:
    seen: Iterator[GroupView | None] = iter(views)
    forced: list[int] = []

    def describe() -> GroupView:
        view = next(seen)
        if view is None:
            raise RuntimeError("broker away")
        return view

    def rebalance() -> None:
        if fail_rebalance:
            raise RuntimeError("coordinator away")
        forced.append(1)

    watch = GroupWatch(
        KafkaSettings(), "g", "events", 10.0, flow="unit", describe=describe, rebalance=rebalance
    )
    return watch, forced


def test_the_watch_forces_a_rebalance_of_a_stalled_group_and_counts_it() -> None:
    before = metrics.GROUP_REBALANCES_FORCED.labels("unit")._value.get()
    watch, forced = _watch([STALLED, None, STALLED, STALLED, HEALTHY])
    assert [watch.check() for _ in range(5)] == [False, False, False, True, False]
    assert forced == [1] and watch.forced == 1
    assert metrics.GROUP_REBALANCES_FORCED.labels("unit")._value.get() == before + 1
    assert metrics.GROUP_UNOWNED.labels("unit")._value.get() == 0


def test_a_rebalance_that_cannot_be_forced_is_tried_again_after_two_more_checks() -> None:
    watch, _ = _watch([STALLED, STALLED], fail_rebalance=True)
    assert [watch.check(), watch.check()] == [False, False]
    assert watch.forced == 0
    assert metrics.GROUP_UNOWNED.labels("unit")._value.get() == 2
