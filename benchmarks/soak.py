"""The soak: a long open-loop load on one worker, its RSS sampled on a fixed period.

:func:`paced_stream` sends a cycled pool of events at a fixed rate for a given time (event ids
repeat: nothing in the decision path keys on them, and the soak times no single event) and
calls ``tick`` every ``tick_s`` seconds. :func:`rss_growth` is the verdict's input: last sample
over the first (the first is taken after the warm-up burst, when the worker's caches are full).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["paced_stream", "rss_growth"]


def rss_growth(samples: Sequence[dict[str, Any]], worker: int = 0) -> float | None:
    """``rss[last] / rss[first] - 1`` of ``worker`` over ``samples`` (``{"rss_mib": [..]}``);
    None with fewer than two samples or a non-positive start."""
    values = [float(s["rss_mib"][worker]) for s in samples if len(s.get("rss_mib", ())) > worker]
    if len(values) < 2 or values[0] <= 0:
        return None
    return values[-1] / values[0] - 1.0


def paced_stream(
    bootstrap: str,
    topic: str,
    pool: Sequence[tuple[bytes, bytes]],
    rate: float,
    seconds: float,
    tick: Callable[[float, int], None],
    tick_s: float = 30.0,
) -> tuple[int, float]:
    """Send ``pool`` cycled at ``rate`` events/s for ``seconds``; ``tick(elapsed_s, sent)``
    every ``tick_s``. Returns ``(sent, achieved_rate)``."""
    from confluent_kafka import Producer

    if not pool:
        raise ValueError("empty event pool")
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1, "enable.idempotence": True})
    p.list_topics(topic, timeout=30)
    size = len(pool)
    t0 = time.perf_counter()
    next_tick = tick_s
    sent = 0
    while True:
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            break
        due = int(elapsed * rate) + 1
        while sent < due:
            key, value = pool[sent % size]
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
        wait = t0 + sent / rate - time.perf_counter()
        if wait > 0:
            time.sleep(min(wait, 0.005))
    elapsed = time.perf_counter() - t0
    p.flush(30)
    return sent, sent / elapsed if elapsed > 0 else float("nan")
