"""The batch histogram exposes exactly what prometheus_client's Histogram does for the same
observations (buckets, count, sum), so dashboards and alerts read it the same way."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from workers.metrics import BatchHistogram

BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def _lines(registry: CollectorRegistry) -> list[str]:
    text = generate_latest(registry).decode()
    return sorted(line for line in text.splitlines() if "_created" not in line)


def test_exposition_equals_prometheus_histogram() -> None:
    rng = np.random.default_rng(7)
    batches = [rng.exponential(0.3, n) for n in (0, 1, 17, 500)]
    batches.append(np.array([0.01, 0.025, 1.0, 30.0, 30.5, 0.0, -1.0]))  # on the bounds, beyond
    reference, batched = CollectorRegistry(), CollectorRegistry()
    hist = Histogram("lat_seconds", "Latency.", ["flow"], buckets=BUCKETS, registry=reference)
    fast = BatchHistogram("lat_seconds", "Latency.", ["flow"], BUCKETS, registry=batched)
    for flow in ("credit", "mortgage"):
        for values in batches:
            for v in values:
                hist.labels(flow).observe(float(v))
            fast.labels(flow).observe_many(values)
    ours, theirs = _lines(batched), _lines(reference)
    exact = [line for line in theirs if "_sum{" not in line]
    assert [line for line in ours if "_sum{" not in line] == exact
    sums = [(a.split()[0], float(a.split()[1])) for a in ours if "_sum{" in a]
    assert sums == [
        (b.split()[0], pytest.approx(float(b.split()[1]), rel=1e-12))
        for b in theirs
        if "_sum{" in b
    ]


def test_concurrent_batches_lose_nothing() -> None:
    fast = BatchHistogram("c_seconds", "C.", ["flow"], BUCKETS, registry=None)
    child = fast.labels("f")
    threads = [
        threading.Thread(target=lambda: [child.observe_many(np.full(100, 0.2)) for _ in range(50)])
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert int(child.counts.sum()) == 4 * 50 * 100
    assert child.sum == pytest.approx(4 * 50 * 100 * 0.2)


def test_wrong_label_count_is_refused() -> None:
    fast = BatchHistogram("w_seconds", "W.", ["flow"], BUCKETS, registry=None)
    with pytest.raises(ValueError, match="expected labels"):
        fast.labels("a", "b")
