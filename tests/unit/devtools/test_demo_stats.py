"""The demo's figures as pure maths: latency percentiles, offered load, capacity from a
backlog, this run's dead letters, and summary lines that say what each figure measures."""

from __future__ import annotations

import pytest

from devtools.demo_stats import (
    LATENCY_MEANING,
    capacity,
    epoch_seconds,
    group_members,
    latency_summary,
    measurement_lines,
    offered_rate,
    run_dead_letters,
)


def test_epoch_seconds_reads_z_and_offsets() -> None:
    assert epoch_seconds("1970-01-01T00:00:10Z") == 10.0
    assert epoch_seconds("1970-01-01T01:00:10.5+01:00") == 10.5


def test_latency_summary_percentiles() -> None:
    out = latency_summary([float(v) for v in range(1, 101)])  # 1..100 ms
    assert out["n"] == 100
    assert out["p50"] == pytest.approx(50.5)
    assert out["p95"] == pytest.approx(95.0, abs=0.1)
    assert out["p99"] == pytest.approx(99.0, abs=0.1)
    assert out["max"] == 100.0


def test_latency_summary_of_nothing_is_none_not_nan() -> None:
    assert latency_summary([]) == {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}


def test_offered_rate_is_sent_over_the_send_span_not_a_wall_clock() -> None:
    # 1,500 events at 1,500 ev/s: event times 0 .. 1499/1500 s, plus 30 malformed in between
    times = [1000.0 + i / 1500 for i in range(1500)]
    out = offered_rate(1530, times)
    assert out["send_seconds"] == pytest.approx(1499 / 1500, abs=1e-3)
    assert out["events_per_s"] == pytest.approx(1530 / (1499 / 1500), rel=1e-3)


def test_offered_rate_needs_a_span() -> None:
    assert offered_rate(1, [5.0])["events_per_s"] is None
    assert offered_rate(2, [5.0, 5.0])["events_per_s"] is None


def test_capacity_counts_only_the_backlog_window() -> None:
    # the burst is in Kafka at t=1.0; reads come in batches of 100 every 0.1 s from 0.5 s:
    # 500 events/0.5 s before, 1000 after; the rate is 1000 ev/s
    reads = [0.5 + 0.1 * b for b in range(15) for _ in range(100)]
    out = capacity(reads, in_kafka_at=1.0)
    assert out["backlog"] is True
    assert out["after_burst_in_kafka"] == 1000
    # from the first read after 1.0 (t=1.0) to the last (t=1.9): 900 decisions in 0.9 s
    assert out["decisions_in_window"] == 900
    assert out["window_s"] == pytest.approx(0.9)
    assert out["decisions_per_s"] == pytest.approx(1000.0)


def test_capacity_without_a_backlog_is_a_lower_bound() -> None:
    # the producer was slower than the workers: almost everything was read before the burst
    # was completely in Kafka
    reads = [i / 100 for i in range(100)]
    out = capacity(reads, in_kafka_at=0.98)
    assert out["backlog"] is False
    assert out["decisions_per_s"] == pytest.approx(99 / 0.99)


def test_capacity_of_too_few_reads_is_not_measured() -> None:
    assert capacity([1.0], 0.0)["decisions_per_s"] is None
    assert capacity([2.0, 2.0, 2.0], 0.0)["decisions_per_s"] is None  # one read for all


def test_run_dead_letters_keeps_this_phase_only() -> None:
    def dl(part: int, off: int, topic: str = "ev") -> dict[str, object]:
        return {"source_topic": topic, "source_partition": part, "source_offset": off}

    letters = [dl(0, 5), dl(0, 10), dl(0, 19), dl(0, 20), dl(1, 3), dl(1, 7), dl(0, 12, "x")]
    start, end = {0: 10, 1: 5}, {0: 20, 1: 8}
    assert run_dead_letters(letters, "ev", start, end) == [dl(0, 10), dl(0, 19), dl(1, 7)]
    assert dl(0, 20) in run_dead_letters(letters, "ev", start)  # no end: all from start


def test_group_members_only_when_stable() -> None:
    assert group_members(None) is None
    assert group_members({"group_state": "PreparingRebalance", "members": [1, 2]}) is None
    assert group_members({"group_state": "Stable", "members": [1, 2]}) == 2


def _stream() -> dict[str, object]:
    return {
        "records_sent": 1530,
        "offered": {"events_per_s": 1531.0, "send_seconds": 0.999},
        "latency_ms": {"n": 1500, "p50": 41.0, "p95": 80.0, "p99": 120.0, "max": 300.0},
    }


def test_summary_lines_label_offered_load_latency_and_capacity() -> None:
    cap = {
        "decisions": 10_000,
        "decisions_per_s": 5200.0,
        "backlog": True,
        "decisions_in_window": 8000,
        "window_s": 1.538,
    }
    text = "\n".join(measurement_lines(_stream(), cap, workers=2, rate=1500))
    assert "offered load     1,531 ev/s = events sent / send duration" in text
    assert "producer paced at 1,500 ev/s" in text
    assert "p50 41 ms, p95 80 ms, p99 120 ms" in text and LATENCY_MEANING in text
    assert "capacity         5,200 decisions/s with 2 workers draining a backlog" in text
    assert "end to end" not in text  # the old, misleading wall-clock figure


def test_summary_lines_say_when_capacity_is_only_a_lower_bound() -> None:
    cap = {"decisions": 100, "decisions_per_s": 100.0, "backlog": False}
    text = "\n".join(measurement_lines(_stream(), cap, workers=2, rate=0))
    assert "at least 100 decisions/s" in text and "producer flat out" in text
    assert "not measured" in "\n".join(measurement_lines(_stream(), None, workers=2, rate=0))
