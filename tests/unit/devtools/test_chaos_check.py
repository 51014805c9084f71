"""The chaos drill's accounting: lost, duplicated and missed poison are found; output gaps are
measured per partition from each fault."""

from __future__ import annotations

import pytest

from devtools.chaos_check import Fault, Seen, account, output_gaps


def test_a_clean_run_is_ok() -> None:
    acc = account(["a", "b"], ["t/0/5"], {"a": 1}, ["a", "b"], ["t/0/5"], ["a"])
    assert acc.ok and (acc.sent, acc.decided, acc.dead_lettered, acc.duplicates) == (4, 2, 1, 1)


def test_lost_duplicated_and_missed_poison_are_reported() -> None:
    acc = account(
        valid=["a", "b", "c"],
        poison=["t/0/5", "t/0/6"],
        repeats={"a": 2},
        decided=["a", "a", "b"],
        dead_lettered=["t/0/5", "b"],
        duplicates=["a"],
    )
    assert not acc.ok
    assert acc.duplicated == ["a"]
    assert acc.lost == ["c", "a"]  # c never seen; one repeat of a not recorded
    assert acc.poison_missed == ["t/0/6"]
    assert acc.unexpected_dlq == ["b"]


def test_the_gap_is_the_slowest_partition_with_events_waiting() -> None:
    sent = [Seen("x", 0, 9.0), Seen("y", 1, 12.0), Seen("z", 2, 5.0)]
    decided = [Seen("d", 0, 10.5), Seen("e", 1, 14.0), Seen("f", 2, 6.0)]
    faults = [Fault("kill", 8.0, 8.0), Fault("late", 20.0, 20.0)]
    gaps = output_gaps(decided, sent, faults, end=30.0)
    assert gaps["kill"] == 6.0  # partition 1 resumed last; partition 2 had nothing waiting
    assert gaps["late"] == 0.0  # nothing sent after it


def test_a_partition_that_never_resumes_has_no_gap_figure() -> None:
    gaps = output_gaps([Seen("d", 0, 1.0)], [Seen("x", 0, 3.0)], [Fault("kill", 2.0, 2.0)], 9.0)
    assert gaps["kill"] is None


def test_a_quick_first_decision_does_not_hide_a_later_silence() -> None:
    sent = [Seen(f"x{i}", 0, 8.0 + i) for i in range(8)]
    decided = [Seen("a", 0, 8.1), Seen("b", 0, 8.2), Seen("c", 0, 15.0), Seen("d", 0, 15.1)]
    gaps = output_gaps(decided, sent, [Fault("broker", 8.0, 8.0)], end=16.0)
    assert gaps["broker"] == pytest.approx(6.8)
