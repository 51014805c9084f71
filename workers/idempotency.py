"""Idempotency by ``event_id``: a repeated event id within the window gets no second decision.

Each event id is *claimed* by the Kafka record that first carried it, named by its position
(``topic/partition/offset``). A claim is one Redis key with a TTL (the window), scoped by the
consumer group. For every decodable event of a batch, one round trip asks Redis, atomically:
is this id unclaimed (claim it now) or claimed by this very record? Then the event is
decided. Claimed by another record? Then it is a duplicate: no decision, a duplicate record
pointing at the first, and a metric.

The guarantee (docs/reliability.md):

* Within the window, each event id gets at most one decision per consumer group, on top of
  the exactly-once output of the Kafka transactions.
* A record re-read after an aborted transaction, a crash or a rebalance holds its own claim,
  so it is decided again inside the new transaction: claims never lose a decision.
* A claim is written before its transaction commits, so a duplicate that arrives while the
  first occurrence is being re-decided is still a duplicate (the first is decided on re-read).
* Without Redis the loop pauses (it never decides unchecked) and retries with back-off.
* Claims expire after the window; Redis must persist (AOF) for claims to survive its own
  restart. Memory: about 100 bytes per event in the window.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Protocol

import msgspec

__all__ = [
    "DuplicateEvent",
    "Idempotency",
    "IdempotencyUnavailable",
    "MemoryIdempotency",
    "RedisIdempotency",
    "owner_of",
]


class IdempotencyUnavailable(Exception):
    """The claim store cannot be reached: the batch must not be decided now."""


class Idempotency(Protocol):
    """Claims event ids for the records that first carried them."""

    def claim(self, event_ids: Sequence[str], owners: Sequence[str]) -> list[str | None]:
        """Per event: None when ``owner`` holds the id (claimed now, or earlier by this same
        record), else the owner that holds it. Raises :class:`IdempotencyUnavailable`."""
        ...

    def close(self) -> None:
        """Release the store's connections (claims already made stay)."""
        ...


def owner_of(topic: str, partition: int, offset: int) -> str:
    """The claim owner naming one Kafka record."""
    return f"{topic}/{partition}/{offset}"


class DuplicateEvent(msgspec.Struct, frozen=True):
    """The ``decisions.duplicates`` record of an event id seen again: no decision was made."""

    event_id: str
    entity_id: str
    first: str
    """The record that holds the claim (``topic/partition/offset``): its decision is the one."""
    duplicate: str
    """This record (``topic/partition/offset``)."""
    detected_at: float
    """Seconds since the epoch."""

    def encode(self) -> bytes:
        """JSON bytes of the record."""
        return msgspec.json.encode(self)


# ARGV: the key prefix, the TTL in seconds, then the event ids and their owners as two
# msgpack arrays (two arguments, not one per id: packing a thousand arguments cost the
# worker's Python more than the claims did). One SET per id (NX GET, Redis >= 7.0: claims an
# unclaimed id and returns the holder of a claimed one). Returns only the ids claimed by
# another record, as a flat list: index (1-based), holder. The keys are built here, not passed
# in KEYS: fine on one Redis, not on Redis Cluster.
_CLAIM = """
local prefix, ttl = ARGV[1], ARGV[2]
local ids, owners = cmsgpack.unpack(ARGV[3]), cmsgpack.unpack(ARGV[4])
local out = {}
for i, id in ipairs(ids) do
  local owner = owners[i]
  local held = redis.call('SET', prefix .. id, owner, 'NX', 'GET', 'EX', ttl)
  if held and held ~= owner then
    out[#out + 1] = i
    out[#out + 1] = held
  end
end
return out
"""


_msgpack = msgspec.msgpack.encode


class RedisIdempotency:
    """Claims in Redis (>= 7.0), one Lua call per batch (atomic: two workers cannot both
    claim); the reply lists only the duplicates."""

    def __init__(self, url: str, scope: str, window_s: float, timeout_s: float = 2.0) -> None:
        import redis

        self._redis: Any = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._script = self._redis.register_script(_CLAIM)
        self._prefix = f"decisionflow:claims:{scope}:"
        self._ttl = max(int(window_s), 1)

    def claim(self, event_ids: Sequence[str], owners: Sequence[str]) -> list[str | None]:
        """See :meth:`Idempotency.claim`."""
        if not event_ids:
            return []
        args: list[str | int | bytes] = [
            self._prefix,
            self._ttl,
            _msgpack(list(event_ids)),
            _msgpack(list(owners)),
        ]
        try:
            taken = self._script(keys=[], args=args)
        except self._errors as exc:
            raise IdempotencyUnavailable(f"{type(exc).__name__}: {exc}") from exc
        out: list[str | None] = [None] * len(event_ids)
        for j in range(0, len(taken), 2):
            out[int(taken[j]) - 1] = taken[j + 1].decode()
        return out

    def close(self) -> None:
        """Close the connection pool."""
        self._redis.close()


class MemoryIdempotency:
    """Claims in this process's memory (tests, single-process tools); same semantics."""

    def __init__(self, window_s: float = 86_400.0) -> None:
        self._window = window_s
        self._claims: dict[str, tuple[str, float]] = {}
        self.available = True
        self.closed = False

    def claim(self, event_ids: Sequence[str], owners: Sequence[str]) -> list[str | None]:
        """See :meth:`Idempotency.claim`."""
        if not self.available or self.closed:
            raise IdempotencyUnavailable("claim store switched off")
        now = time.monotonic()
        out: list[str | None] = []
        for event_id, owner in zip(event_ids, owners, strict=True):
            held = self._claims.get(event_id)
            if held is None or held[1] <= now:
                self._claims[event_id] = (owner, now + self._window)
                out.append(None)
            else:
                out.append(None if held[0] == owner else held[0])
        return out

    def close(self) -> None:
        """Refuse further claims, as a closed Redis store would fail them."""
        self.closed = True
