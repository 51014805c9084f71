"""Micro-batching: collect records until ``max_batch_size`` or ``max_wait_ms`` is reached.

The wait counts from when the oldest record was produced when the caller knows it (Kafka record
timestamps), not only from when it was polled: records that arrived while the previous batch was
being decided have already waited, and their batch closes that much sooner.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

__all__ = ["MicroBatcher"]

T = TypeVar("T")


class MicroBatcher(Generic[T]):
    """A batch is ready when it is full or its oldest record has waited ``max_wait_ms``."""

    def __init__(
        self,
        max_batch_size: int,
        max_wait_ms: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self._clock = clock
        self._items: list[T] = []
        self._first_at: float | None = None  # the oldest record's birth (drives max_wait)
        self._buffered_at: float | None = None  # when this batch's first record was buffered

    def __len__(self) -> int:
        return len(self._items)

    def add(self, items: Iterable[T], waited: float = 0.0) -> None:
        """Append records; ``waited``: seconds the oldest of them has already waited.

        The batch's wait clock starts at its oldest record. A negative ``waited`` (a producer
        clock ahead of ours) counts as 0, so a batch never waits longer than ``max_wait_ms``.
        """
        before = len(self._items)
        self._items.extend(items)
        if len(self._items) == before:
            return
        now = self._clock()
        born = now - max(waited, 0.0)
        self._first_at = born if self._first_at is None else min(self._first_at, born)
        if self._buffered_at is None:
            self._buffered_at = now

    def room(self) -> int:
        """How many records fit before the batch is full."""
        return max(self.max_batch_size - len(self._items), 0)

    def ready(self) -> bool:
        """True when the batch should be processed now."""
        if not self._items:
            return False
        if len(self._items) >= self.max_batch_size:
            return True
        assert self._first_at is not None
        return self._clock() - self._first_at >= self.max_wait

    def age(self) -> float:
        """Seconds since the oldest queued record was produced, as far as known (0 when empty)."""
        return self._clock() - self._first_at if self._first_at is not None else 0.0

    def fill_time(self) -> float:
        """Seconds since this batch's first record was buffered here (0 when empty).

        Unlike :meth:`age` this never includes time a record spent in Kafka before the worker
        read it (a backlog, a producer clock ahead), so it measures the batch's own filling.
        """
        return self._clock() - self._buffered_at if self._buffered_at is not None else 0.0

    def poll_timeout_ms(self, idle_ms: int = 100) -> int:
        """How long the next poll may block without overrunning ``max_wait_ms``."""
        if not self._items or self._first_at is None:
            return idle_ms
        left = self.max_wait - (self._clock() - self._first_at)
        return max(int(left * 1000), 0)

    def drain(self) -> list[T]:
        """Take the whole batch (at most ``max_batch_size``; any excess stays queued)."""
        batch, self._items = (
            self._items[: self.max_batch_size],
            self._items[self.max_batch_size :],
        )
        self._first_at = self._clock() if self._items else None
        self._buffered_at = self._first_at
        return batch

    def peek(self) -> list[T]:
        """The queued records (a copy), oldest first."""
        return list(self._items)

    def dedupe(self, key: Callable[[T], Hashable]) -> int:
        """Remove later copies of records with the same ``key``; returns how many."""
        seen: set[Hashable] = set()
        kept = []
        for item in self._items:
            k = key(item)
            if k not in seen:
                seen.add(k)
                kept.append(item)
        removed = len(self._items) - len(kept)
        self._items = kept
        return removed

    def drain_all(self) -> list[T]:
        """Take every queued record, full batch or not."""
        items, self._items, self._first_at, self._buffered_at = self._items, [], None, None
        return items

    def push_front(self, items: list[T]) -> None:
        """Put records back ahead of the queue (e.g. those of an aborted transaction)."""
        if not items:
            return
        self._items[:0] = items
        now = self._clock()
        self._first_at = now if self._first_at is None else min(self._first_at, now)
        self._buffered_at = now if self._buffered_at is None else min(self._buffered_at, now)

    def drop(self, predicate: Callable[[T], bool]) -> list[T]:
        """Remove and return queued records matching ``predicate`` (e.g. of revoked
        partitions)."""
        dropped = [item for item in self._items if predicate(item)]
        self._items = [item for item in self._items if not predicate(item)]
        if not self._items:
            self._first_at = self._buffered_at = None
        return dropped
