"""The ceiling loop closes transactions exactly when a worker would (no Kafka here)."""

from __future__ import annotations

import pytest

from benchmarks.loops import transaction_due

pytestmark = pytest.mark.unit


def test_zero_max_events_is_one_transaction_per_batch() -> None:
    assert transaction_due(events=1, age_ms=0.0, max_events=0, max_ms=100)


def test_a_transaction_spans_batches_until_events_or_age() -> None:
    assert not transaction_due(events=1500, age_ms=40.0, max_events=2000, max_ms=100)
    assert transaction_due(events=2000, age_ms=40.0, max_events=2000, max_ms=100)
    assert transaction_due(events=10, age_ms=100.0, max_events=2000, max_ms=100)
