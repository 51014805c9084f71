"""API keys (compared in constant time) and per-key token-bucket rate limits."""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Callable, Mapping

from pydantic import SecretStr

__all__ = ["ANONYMOUS", "ApiKeys", "RateLimiter", "TokenBucket"]

ANONYMOUS = "anonymous"
"""The caller's name when the API runs with ``--insecure-no-auth``."""


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


class ApiKeys:
    """The configured keys, by name. Only their SHA-256 digests are kept; comparing digests
    with :func:`hmac.compare_digest` takes the same time whatever the presented key is."""

    def __init__(self, keys: Mapping[str, SecretStr]) -> None:
        self._digests = [(name, _digest(key.get_secret_value())) for name, key in keys.items()]

    def __bool__(self) -> bool:
        return bool(self._digests)

    def identify(self, presented: str | None) -> str | None:
        """The name of the key ``presented`` is, or None (every key is compared)."""
        if presented is None:
            return None
        digest = _digest(presented)
        found: str | None = None
        for name, expected in self._digests:
            if hmac.compare_digest(digest, expected) and found is None:
                found = name
        return found


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; one token per request."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self._clock = clock
        self._at = clock()

    def take(self) -> float:
        """0 when a token was taken, else the seconds until one will be there."""
        now = self._clock()
        self.tokens = min(self.burst, self.tokens + (now - self._at) * self.rate)
        self._at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class RateLimiter:
    """One :class:`TokenBucket` per key name (names are the configured keys: bounded).

    ``rate`` 0 turns limiting off. Used from the event loop's thread only.
    """

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def retry_after(self, name: str) -> int:
        """0 when ``name`` may make a request now, else whole seconds to wait (at least 1)."""
        if self.rate <= 0:
            return 0
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = self._buckets[name] = TokenBucket(self.rate, self.burst, self._clock)
        wait = bucket.take()
        return 0 if wait == 0 else max(1, math.ceil(wait))
