"""Recent decisions by event id, and the requests waiting for them.

The decisions reader (:mod:`workers.api.bridge`, a thread) hands every committed decision and
dead letter to :meth:`DecisionHub.deliver`; request handlers (the event loop) look outcomes up,
subscribe to those still to come and claim the right to publish an event. Waiting requests
are asyncio futures, resolved on the loop with ``call_soon_threadsafe``: no polling.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import msgspec

__all__ = [
    "BoundedIndex",
    "DecisionHub",
    "Outcome",
    "Rejected",
    "TooManyWaitersError",
    "decision_event_id",
    "rejected_event",
]

V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Rejected:
    """A worker dead-lettered the event (its contract or feature check failed there)."""

    reason: str
    stage: str
    message: str


Outcome = bytes | Rejected
"""A decision (its JSON, as the workers wrote it) or a dead letter."""


_Items = list[tuple["asyncio.Future[Outcome]", Outcome]]
"""Waiting futures with what to resolve them with."""


class TooManyWaitersError(RuntimeError):
    """``max_waiters`` requests are waiting already."""


class BoundedIndex(Generic[V]):
    """A dict that forgets its oldest entries beyond ``size`` (not thread-safe by itself)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def get(self, key: str) -> V | None:
        """The value of ``key``, or None."""
        return self._items.get(key)

    def put(self, key: str, value: V) -> None:
        """Add or replace ``key`` (it becomes the newest)."""
        items = self._items
        items[key] = value
        items.move_to_end(key)
        while len(items) > self.size:
            items.popitem(last=False)

    def pop(self, key: str) -> V | None:
        """Remove ``key``; its value or None."""
        return self._items.pop(key, None)


class DecisionHub:
    """Thread-safe: the decisions reader's thread delivers, the event loop asks and waits.

    ``decisions`` holds the last ``size`` decisions read (any producer's, not only the API's),
    ``rejected`` the dead letters of events, ``pending`` the events this process published
    and has not seen an outcome for (so a repeated POST does not publish them again).
    """

    def __init__(self, size: int, max_waiters: int) -> None:
        self._lock = threading.Lock()
        self.decisions: BoundedIndex[bytes] = BoundedIndex(size)
        self.rejected: BoundedIndex[Rejected] = BoundedIndex(size)
        self.pending: BoundedIndex[float] = BoundedIndex(size)
        self.max_waiters = max_waiters
        self._waiters: dict[str, list[asyncio.Future[Outcome]]] = {}
        self._waiting = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The event loop waiting requests run on (set at start-up)."""
        self._loop = loop

    @property
    def waiting(self) -> int:
        """Requests waiting for an outcome now."""
        return self._waiting

    # ------------------------------------------------------------------ event loop side

    def decision(self, event_id: str) -> bytes | None:
        """The decision on ``event_id`` if it is in the recent index."""
        with self._lock:
            return self.decisions.get(event_id)

    def outcome(self, event_id: str) -> Outcome | None:
        """The decision, else the dead letter, of ``event_id`` if known here."""
        with self._lock:
            return self.decisions.get(event_id) or self.rejected.get(event_id)

    def is_pending(self, event_id: str) -> bool:
        """Published by this process and no outcome seen yet."""
        with self._lock:
            return event_id in self.pending

    def subscribe(self, event_id: str) -> asyncio.Future[Outcome]:
        """A future for the outcome of ``event_id`` (already done if it was decided).

        Call on the event loop; :meth:`unsubscribe` it if you stop waiting.
        Raises :class:`TooManyWaitersError` beyond ``max_waiters``.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        with self._lock:
            known = self.decisions.get(event_id)
            if known is not None:
                future.set_result(known)
                return future
            if self._waiting >= self.max_waiters:
                raise TooManyWaitersError(f"{self._waiting} requests are waiting already")
            self._waiters.setdefault(event_id, []).append(future)
            self._waiting += 1
        return future

    def unsubscribe(self, event_id: str, future: asyncio.Future[Outcome]) -> None:
        """Stop waiting with ``future`` (after a time-out or a failed publish)."""
        with self._lock:
            futures = self._waiters.get(event_id)
            if futures and future in futures:
                futures.remove(future)
                self._waiting -= 1
                if not futures:
                    del self._waiters[event_id]
        future.cancel()

    def claim(self, event_id: str) -> bool:
        """True when the caller should publish ``event_id``: neither decided nor pending here.

        A dead letter of an earlier attempt is forgotten (the payload may have been fixed).
        """
        with self._lock:
            if event_id in self.decisions or event_id in self.pending:
                return False
            self.rejected.pop(event_id)
            self.pending.put(event_id, time.monotonic())
            return True

    def release(self, event_id: str) -> None:
        """Publishing ``event_id`` failed: a later request may try again."""
        with self._lock:
            self.pending.pop(event_id)

    def remember(self, event_id: str, decision: bytes) -> None:
        """Add a decision found elsewhere (the store) as if it had been read."""
        self.deliver([(event_id, decision)], [])

    def cancel_all(self) -> None:
        """Shutting down: every waiting request stops waiting."""
        with self._lock:
            futures: _Items = [(f, b"") for fs in self._waiters.values() for f in fs]
            self._waiters.clear()
            self._waiting = 0
        if futures:
            self._call(_cancel, futures)

    # ------------------------------------------------------------------ reader side

    def deliver(
        self, decisions: Sequence[tuple[str, bytes]], rejected: Sequence[tuple[str, Rejected]]
    ) -> None:
        """Record what the reader read and resolve the requests waiting for it (any thread)."""
        fired: _Items = []
        with self._lock:
            items: list[tuple[str, Outcome]] = [*decisions, *rejected]
            for event_id, outcome in items:
                if isinstance(outcome, Rejected):
                    if event_id not in self.pending:
                        continue  # not ours, or already decided: nothing waits for it
                    self.rejected.put(event_id, outcome)
                else:
                    self.decisions.put(event_id, outcome)
                self.pending.pop(event_id)
                futures = self._waiters.pop(event_id, None)
                if futures:
                    self._waiting -= len(futures)
                    fired += [(f, outcome) for f in futures]
        if fired:
            self._call(_resolve, fired)

    def _call(self, fn: Callable[[_Items], None], items: _Items) -> None:
        """Run ``fn(items)`` on the event loop (a closed or missing loop: nobody waits)."""
        if self._loop is None:
            return
        with contextlib.suppress(RuntimeError):  # closed between the check and the call
            self._loop.call_soon_threadsafe(fn, items)


def _resolve(fired: _Items) -> None:
    for future, outcome in fired:
        if not future.done():
            future.set_result(outcome)


def _cancel(fired: _Items) -> None:
    for future, _ in fired:
        future.cancel()


# ------------------------------------------------------------------------ record parsing


class _HasEventId(msgspec.Struct):
    event_id: str


class _DeadLetterHead(msgspec.Struct):
    reason: str
    stage: str
    error_message: str
    source_topic: str
    raw: str


_event_id_of = msgspec.json.Decoder(_HasEventId).decode
_dead_letter_of = msgspec.json.Decoder(_DeadLetterHead).decode


def decision_event_id(value: bytes | None) -> str | None:
    """The event id of a decision record (None if the record is not one)."""
    if not value:
        return None
    try:
        return _event_id_of(value).event_id
    except (msgspec.DecodeError, ValueError):
        return None


def rejected_event(value: bytes | None, events_topic: str) -> tuple[str, Rejected] | None:
    """(event id, why) of a dead letter of an event read from ``events_topic``; None when the
    record is not one or the event's own bytes name no event id."""
    if not value:
        return None
    try:
        head = _dead_letter_of(value)
        if head.source_topic != events_topic:
            return None
        event_id = _event_id_of(base64.b64decode(head.raw, validate=True)).event_id
    except (msgspec.DecodeError, ValueError, binascii.Error):
        return None
    return event_id, Rejected(head.reason, head.stage, head.error_message)
