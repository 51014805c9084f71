"""The soak: a long open-loop load on one worker, its RSS sampled on a fixed period.

:func:`paced_stream` sends a cycled pool of events at a fixed rate for a given time and calls
``tick`` every ``tick_s`` seconds. Each cycle renames the pool's event ids
(:func:`cycled_event`): workers decide an event id once and count its repeats as duplicates, so
a repeated id would not load the worker. :func:`rss_growth` is the verdict's input: last sample
over the first (the first is taken after the warm-up burst, when the worker's caches are full).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["cycled_event", "paced_stream", "rss_growth"]


def rss_growth(samples: Sequence[dict[str, Any]], worker: int = 0) -> float | None:
    """``rss[last] / rss[first] - 1`` of ``worker`` over ``samples`` (``{"rss_mib": [..]}``);
    None with fewer than two samples or a non-positive start."""
    values = [float(s["rss_mib"][worker]) for s in samples if len(s.get("rss_mib", ())) > worker]
    if len(values) < 2 or values[0] <= 0:
        return None
    return values[-1] / values[0] - 1.0


def cycled_event(
    pool: Sequence[tuple[bytes, bytes]], i: int, id_prefix: bytes
) -> tuple[bytes, bytes]:
    """The ``i``-th event sent from the cycled ``pool``, whose event ids are
    ``<id_prefix><index>``: from the second cycle on, the id names the cycle too
    (``<id_prefix><cycle>.<index>``), so every event sent is a new one."""
    key, value = pool[i % len(pool)]
    cycle = i // len(pool)
    if cycle:
        value = value.replace(b'"' + id_prefix, b'"%s%d.' % (id_prefix, cycle), 1)
    return key, value


def paced_stream(
    bootstrap: str,
    topic: str,
    pool: Sequence[tuple[bytes, bytes]],
    rate: float,
    seconds: float,
    tick: Callable[[float, int], None],
    tick_s: float = 30.0,
    id_prefix: bytes = b"soak-",
) -> tuple[int, float]:
    """Send ``pool`` (event ids ``<id_prefix><index>``) cycled at ``rate`` events/s for
    ``seconds``, each event a new id (:func:`cycled_event`); ``tick(elapsed_s, sent)`` every
    ``tick_s``. Returns ``(sent, achieved_rate)``."""
    from confluent_kafka import Producer

    if not pool:
        raise ValueError("empty event pool")
    from benchmarks.harness import PACE_LINGER_MS, pace

    p = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": PACE_LINGER_MS, "enable.idempotence": True}
    )
    p.list_topics(topic, timeout=30)
    t0 = time.perf_counter()
    next_tick = tick_s
    sent = 0
    while True:
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            break
        due = int(elapsed * rate) + 1
        while sent < due:
            key, value = cycled_event(pool, sent, id_prefix)
            try:
                p.produce(topic, value=value, key=key)
            except BufferError:  # local queue full: serve delivery reports and retry
                p.poll(0.01)
                continue
            sent += 1
        p.poll(0)
        if elapsed >= next_tick:
            tick(elapsed, sent)
            next_tick += tick_s
        pace(t0 + sent / rate - time.perf_counter())
    elapsed = time.perf_counter() - t0
    p.flush(30)
    return sent, sent / elapsed if elapsed > 0 else float("nan")
