"""The soak's verdict input (RSS growth from the first sample to the last) and its load (a
cycled pool whose every event is new)."""

from __future__ import annotations

import json

import pytest

from benchmarks.soak import cycled_event, rss_growth

pytestmark = pytest.mark.unit


def test_rss_growth_is_last_over_first() -> None:
    samples = [{"rss_mib": [100.0, 50.0]}, {"rss_mib": [130.0, 50.0]}, {"rss_mib": [105.0, 60.0]}]
    assert rss_growth(samples) == pytest.approx(0.05)
    assert rss_growth(samples, worker=1) == pytest.approx(0.2)
    assert rss_growth(samples[:1]) is None
    assert rss_growth([{"rss_mib": [0.0]}, {"rss_mib": [1.0]}]) is None
    assert rss_growth(samples, worker=2) is None


def test_every_event_a_cycled_pool_sends_is_a_new_event() -> None:
    # workers decide an event id once: a pool sent over and over must not repeat ids
    pool = [
        (f"k{i}".encode(), json.dumps({"event_id": f"soak-{i}", "entity_id": "soak-x"}).encode())
        for i in range(3)
    ]
    sent = [cycled_event(pool, i, b"soak-") for i in range(9)]
    ids = [json.loads(value)["event_id"] for _, value in sent]
    assert ids[:3] == ["soak-0", "soak-1", "soak-2"] and ids[3] == "soak-1.0"
    assert len(set(ids)) == 9
    assert [key for key, _ in sent] == [f"k{i % 3}".encode() for i in range(9)]
    assert {json.loads(value)["entity_id"] for _, value in sent} == {"soak-x"}
