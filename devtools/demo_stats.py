"""The demo's measurements as pure functions (no Kafka, no clock): what `make demo` prints.

Three figures, each measured on its own and labelled as such:

* **offered load**: events the producer sent / the time it took to send them (the first to the
  last ``event_time`` the producer stamped), i.e. the rate the workers were *fed*;
* **latency**: for every decision of the paced stream, the wall-clock time the demo's
  ``read_committed`` consumer read it minus the event's ``event_time``: producer batching,
  broker, worker batching, scoring and the Kafka transaction commit, all included;
* **capacity**: decisions/s while the workers had a backlog: a burst is written to Kafka first,
  then the rate at which its committed decisions are read, counted from the first read after
  the whole burst was in Kafka to the last read.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np

__all__ = [
    "BACKLOG_SHARE",
    "LATENCY_MEANING",
    "capacity",
    "epoch_seconds",
    "group_members",
    "latency_summary",
    "measurement_lines",
    "offered_rate",
    "run_dead_letters",
]

LATENCY_MEANING = (
    "event time (stamped by the producer) -> decision read by a read_committed consumer"
)
# capacity is a backlog figure only when at least this share of the burst was decided after
# the whole burst was in Kafka; else the producer, not the workers, set the pace
BACKLOG_SHARE = 0.5


def epoch_seconds(iso: str) -> float:
    """An ISO 8601 time with an offset (``...Z`` or ``+00:00``) as Unix seconds."""
    return datetime.fromisoformat(iso).timestamp()


def _r(value: float | None, digits: int = 1) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)


def latency_summary(values_ms: Sequence[float]) -> dict[str, float | int | None]:
    """``n``, ``p50``, ``p95``, ``p99`` and ``max`` of ``values_ms`` (None when empty)."""
    if not values_ms:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    arr = np.asarray(values_ms, dtype=np.float64)
    p50, p95, p99 = (float(v) for v in np.percentile(arr, [50, 95, 99]))
    return {
        "n": int(arr.size),
        "p50": _r(p50),
        "p95": _r(p95),
        "p99": _r(p99),
        "max": _r(float(arr.max())),
    }


def offered_rate(sent: int, event_times: Iterable[float]) -> dict[str, float | None]:
    """Events sent / send duration, the duration being the first to the last ``event_time``.

    ``sent`` may count records without an event time (malformed events sent in between).
    None when fewer than two event times or no time between them.
    """
    times = list(event_times)
    if len(times) < 2:
        return {"events_per_s": None, "send_seconds": None}
    span = max(times) - min(times)
    if span <= 0:
        return {"events_per_s": None, "send_seconds": _r(span, 3)}
    return {"events_per_s": _r(sent / span), "send_seconds": _r(span, 3)}


def capacity(read_times: Sequence[float], in_kafka_at: float) -> dict[str, Any]:
    """Decisions/s of a burst drained from a backlog.

    ``read_times``: when each of the burst's decisions was read (committed); ``in_kafka_at``:
    when the producer had flushed the whole burst. From then on the workers had a backlog, so
    the rate from the first read at or after ``in_kafka_at`` to the last read is what they can
    do: decisions read after that first read / the time between the two (the decisions of the
    first read were partly decided before, so they are not counted).

    ``backlog`` is False when fewer than :data:`BACKLOG_SHARE` of the decisions came after the
    burst was in Kafka: the workers kept up with the producer, and the rate (then taken over
    all reads) is only a lower bound.
    """
    reads = sorted(read_times)
    n = len(reads)
    out: dict[str, Any] = {
        "decisions": n,
        "decisions_per_s": None,
        "window_s": None,
        "decisions_in_window": 0,
        "backlog": False,
        "after_burst_in_kafka": sum(1 for r in reads if r >= in_kafka_at),
    }
    if n < 2:
        return out
    backlog = out["after_burst_in_kafka"] >= max(2, BACKLOG_SHARE * n)
    start = next(r for r in reads if r >= in_kafka_at) if backlog else reads[0]
    counted = sum(1 for r in reads if r > start)
    window = reads[-1] - start
    if window <= 0 or counted == 0:  # one read for all of it: too coarse to time
        return out
    out.update(
        {
            "decisions_per_s": _r(counted / window),
            "window_s": _r(window, 3),
            "decisions_in_window": counted,
            "backlog": backlog,
        }
    )
    return out


def run_dead_letters(
    letters: Iterable[Mapping[str, Any]],
    events_topic: str,
    start: Mapping[int, int],
    end: Mapping[int, int] | None = None,
) -> list[Mapping[str, Any]]:
    """The dead letters of events written at ``start`` (<= offset < ``end``) per partition.

    A dead letter names its source topic, partition and offset, so this picks exactly those of
    one phase of this run, never an earlier run's (those offsets lie below ``start``).
    """
    out = []
    for rec in letters:
        if rec.get("source_topic") != events_topic:
            continue
        part, off = int(rec["source_partition"]), int(rec["source_offset"])
        if off < start.get(part, 0):
            continue
        if end is not None and off >= end.get(part, 0):
            continue
        out.append(rec)
    return out


def group_members(info: Mapping[str, Any] | None) -> int | None:
    """Members of a Stable consumer group (kafka-python's ``describe_groups`` entry); None
    while it is rebalancing, empty or unknown."""
    if not info or info.get("group_state") != "Stable":
        return None
    return len(info.get("members") or [])


def _num(value: Any, unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:,.0f}{unit}"


def measurement_lines(
    stream: Mapping[str, Any], cap: Mapping[str, Any] | None, workers: int, rate: float
) -> list[str]:
    """The summary's offered load, latency and capacity lines, each saying what it measures."""
    offered = stream.get("offered", {})
    lat = stream.get("latency_ms", {})
    paced = f"producer paced at {rate:,.0f} ev/s" if rate else "producer flat out"
    lines = [
        f"offered load     {_num(offered.get('events_per_s'), ' ev/s')} = events sent / send "
        f"duration ({stream.get('records_sent')} in {offered.get('send_seconds')} s; {paced})",
        f"latency          p50 {_num(lat.get('p50'), ' ms')}, p95 {_num(lat.get('p95'), ' ms')}, "
        f"p99 {_num(lat.get('p99'), ' ms')} (max {_num(lat.get('max'), ' ms')}, "
        f"{lat.get('n', 0)} decisions) at that load:",
        f"                 {LATENCY_MEANING}",
    ]
    if not cap:
        lines.append("capacity         not measured (--burst 0)")
        return lines
    per_s = _num(cap.get("decisions_per_s"), " decisions/s")
    if cap.get("backlog"):
        lines += [
            f"capacity         {per_s} with {workers} workers draining a backlog: a burst of "
            f"{cap.get('decisions')} events",
            f"                 was written to Kafka first; committed decisions read / time "
            f"({cap.get('decisions_in_window')} in {cap.get('window_s')} s)",
        ]
    else:
        lines += [
            f"capacity         at least {per_s} with {workers} workers: they kept up with the "
            f"burst's producer,",
            "                 so no backlog built up and this is the producer's pace, not theirs",
        ]
    return lines
