"""The chaos drill's verdict, from what an independent ``read_committed`` reader saw.

Pure functions over plain records, so the accounting is unit-tested apart from the drill:

* :func:`account`: events sent / decided / dead-lettered / duplicates, and the two numbers
  that must be zero: lost (sent, valid, never decided nor dead-lettered nor recorded as a
  duplicate) and duplicated (decided more than once).
* :func:`output_gaps`: per fault, the longest time any partition with events waiting went
  without a committed decision.
"""

from __future__ import annotations

import bisect
import itertools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["Accounting", "Fault", "Seen", "account", "output_gaps"]


@dataclass(frozen=True)
class Seen:
    """One committed record as the checker read it."""

    event_id: str
    partition: int
    """The *events* partition the event came from (decisions are mapped back to it)."""
    at: float
    """When the checker read it (monotonic seconds)."""


@dataclass(frozen=True)
class Fault:
    """One injected fault: output is measured from ``measure_from`` (the fault itself, or the
    moment the failed component was back)."""

    name: str
    at: float
    measure_from: float
    target_s: float | None = None


@dataclass
class Accounting:
    """What became of every event sent."""

    sent: int = 0
    decided: int = 0
    dead_lettered: int = 0
    duplicates: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    unexpected_dlq: list[str] = field(default_factory=list)
    """Valid events that went to the DLQ."""
    poison_missed: list[str] = field(default_factory=list)
    """Poison records that were decided or vanished instead of dead-lettered."""

    @property
    def ok(self) -> bool:
        """Nothing lost, nothing decided twice, every poison record caught."""
        return not (self.lost or self.duplicated or self.unexpected_dlq or self.poison_missed)


def account(
    valid: Iterable[str],
    poison: Iterable[str],
    repeats: Mapping[str, int],
    decided: Iterable[str],
    dead_lettered: Iterable[str],
    duplicates: Iterable[str],
) -> Accounting:
    """Reconcile what was sent with what committed.

    ``valid``: ids of events that must be decided once; ``poison``: markers of records that
    must be dead-lettered (their event id, or ``topic/partition/offset`` when they had none);
    ``repeats``: event id -> how many extra copies were sent (each must become a duplicate
    record, not a decision). ``decided`` / ``dead_lettered`` / ``duplicates``: what the
    reader saw on the decisions, DLQ and duplicates topics.
    """
    valid_set, poison_set = set(valid), set(poison)
    counts = Counter(decided)
    dlq = set(dead_lettered)
    dups = Counter(duplicates)
    out = Accounting(
        sent=len(valid_set) + len(poison_set) + sum(repeats.values()),
        decided=len(counts),
        dead_lettered=len(dlq),
        duplicates=sum(dups.values()),
    )
    out.duplicated = sorted(e for e, n in counts.items() if n > 1)
    out.lost = sorted(e for e in valid_set if e not in counts and e not in dlq)
    out.lost += sorted(e for e, n in repeats.items() if dups[e] < n)
    out.unexpected_dlq = sorted(valid_set & dlq)
    out.poison_missed = sorted(p for p in poison_set if p not in dlq)
    return out


def output_gaps(
    decisions: Iterable[Seen], pending: Iterable[Seen], faults: Sequence[Fault], end: float
) -> dict[str, float | None]:
    """Per fault: the longest silence, in seconds, of any partition that had events sent in
    the fault's window (from ``measure_from`` to the next fault, or ``end``), counted from
    ``measure_from``; None when such a partition never had a decision again.

    ``pending``: the events sent, with the partition and the time they were sent.
    """
    arrivals: dict[int, list[float]] = {}
    for d in decisions:
        arrivals.setdefault(d.partition, []).append(d.at)
    for times in arrivals.values():
        times.sort()
    sent: dict[int, list[float]] = {}
    for e in pending:
        sent.setdefault(e.partition, []).append(e.at)
    out: dict[str, float | None] = {}
    for k, fault in enumerate(faults):
        t0 = fault.measure_from
        t1 = max(faults[k + 1].at if k + 1 < len(faults) else end, t0)
        worst = 0.0
        resumed = True
        for partition, times in sent.items():
            if not any(t0 <= t < t1 for t in times):
                continue  # nothing was sent to this partition in the window
            got = arrivals.get(partition, [])
            after = got[bisect.bisect_right(got, t0) :]
            if not after:
                resumed = False
                break
            inside = [t for t in after if t <= t1] or after[:1]
            points = [t0, *inside]
            silence = max(b - a for a, b in itertools.pairwise(points))
            worst = max(worst, silence)
        out[fault.name] = worst if resumed else None
    return out
