"""The soak's verdict input: RSS growth from the first sample to the last."""

from __future__ import annotations

import pytest

from benchmarks.soak import rss_growth

pytestmark = pytest.mark.unit


def test_rss_growth_is_last_over_first() -> None:
    samples = [{"rss_mib": [100.0, 50.0]}, {"rss_mib": [130.0, 50.0]}, {"rss_mib": [105.0, 60.0]}]
    assert rss_growth(samples) == pytest.approx(0.05)
    assert rss_growth(samples, worker=1) == pytest.approx(0.2)
    assert rss_growth(samples[:1]) is None
    assert rss_growth([{"rss_mib": [0.0]}, {"rss_mib": [1.0]}]) is None
    assert rss_growth(samples, worker=2) is None
