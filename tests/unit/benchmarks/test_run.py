"""The benchmark's command line: phases, sizes, sweep points, clients (nothing starts)."""

from __future__ import annotations

import pytest

from benchmarks.bench import Bench
from benchmarks.run import PHASES, parse_clients, parse_sweep, phases_for, sizes_for

pytestmark = pytest.mark.unit


def test_every_phase_is_a_bench_method() -> None:
    for phase in PHASES:
        assert callable(getattr(Bench, phase))


def test_quick_mode_skips_the_soak_unless_named() -> None:
    assert "soak" in phases_for(None, quick=False)
    assert phases_for(None, quick=False) == list(PHASES)
    assert "soak" not in phases_for(None, quick=True)
    assert phases_for("soak", quick=True) == ["soak"]


def test_only_keeps_the_run_order_and_rejects_unknown_phases() -> None:
    assert phases_for("scoring, ceiling,latency", quick=False) == ["ceiling", "latency", "scoring"]
    with pytest.raises(ValueError, match="ceilings"):
        phases_for("ceilings", quick=False)


def test_sweep_points() -> None:
    assert parse_sweep("500:50, 100:10:2000") == [(500, 50, 0), (100, 10, 2000)]
    for bad in ("500", "0:50", "500:-1", "a:b", ",", "1:2:3:4"):
        with pytest.raises(ValueError):
            parse_sweep(bad)


def test_clients() -> None:
    assert parse_clients("kafka-python") == ["kafka-python"]
    with pytest.raises(ValueError, match="librdkafka"):
        parse_clients("confluent,librdkafka")


def test_sizes() -> None:
    full, quick = sizes_for(False), sizes_for(True)
    assert full["soak_s"] == 600.0 and full["soak_tick_s"] == 30.0
    assert full["latency_pcts"] == [10, 25, 50, 75]
    assert {t for _, _, t in full["sweep"]} == {0, 2000, 5000}
    assert quick["ceiling"] < full["ceiling"]
    assert full["broker_warm"] >= full["ceiling"] and quick["broker_warm"] == 0  # full: warm
    assert sizes_for(False, soak_s=60)["soak_s"] == 60.0
    assert sizes_for(True, sweep=[(1, 2, 3)])["sweep"] == [(1, 2, 3)]
