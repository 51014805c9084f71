"""The benchmark's ratio / target / Markdown code on a hand-made result (no services, no
timing: nothing here measures anything)."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.profile import fold_stacks
from benchmarks.report import evaluate_targets, markdown, ratio

pytestmark = pytest.mark.unit


def _result() -> dict[str, Any]:
    return {
        "meta": {"date": "2026-11-23", "machine": "test box", "command": "x", "mode": "quick"},
        "ceiling": {
            "kafka-python_eos": {"rate": 2000.0, "backend": "kafka-python", "events": 10},
            "confluent_eos": {"rate": 4000.0, "backend": "confluent", "events": 10},
        },
        "e2e": {
            "worker_1": {"rate": 1500.0, "backend": "kafka-python", "events": 10},
            "worker_2": {"rate": 1800.0, "backend": "kafka-python", "events": 10},
            "loop_kafka-python": {"rate": 1000.0, "backend": "kafka-python", "events": 10},
            "loop_confluent": {"rate": 3000.0, "backend": "confluent", "events": 10},
        },
        "peer": {"rate": 50.0, "events": 10},
        "latency_50": {"p99": 120.0, "max_wait_ms": 50, "target_rate": 750.0},
        "memory": [{"name": "w1", "rss_start_mib": 100.0, "rss_end_mib": 105.0, "events": 10}],
    }


def test_ratio_handles_missing_and_zero() -> None:
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(None, 2.0) is None
    assert ratio(1.0, 0.0) is None
    assert ratio(float("nan"), 1.0) is None


def test_targets_compare_each_backend_with_its_own_ceiling() -> None:
    rows = {r["target"]: r for r in evaluate_targets(_result())}
    w1 = rows["e2e, real worker (kafka-python, 1 worker) / ceiling (kafka-python, EOS)"]
    assert w1["value"] == pytest.approx(0.75) and w1["met"] is True
    kp = rows["e2e, adapter loop (kafka-python, 1 process) / ceiling (kafka-python, EOS)"]
    assert kp["value"] == pytest.approx(0.5) and kp["met"] is False
    ck = rows["e2e, adapter loop (confluent-kafka, 1 process) / ceiling (confluent, EOS)"]
    assert ck["value"] == pytest.approx(0.75) and ck["met"] is True
    assert rows["e2e (1 worker) / per-event Celery peer"]["value"] == pytest.approx(30.0)
    assert rows["e2e (1 worker) / per-event Celery peer"]["met"] is True
    lat = rows["p99 e2e latency at 50 % of max rate"]
    assert lat["bound"] == "<= 100 ms" and lat["met"] is False
    rss = rows["RSS growth, w1"]
    assert rss["value"] == pytest.approx(0.05) and rss["met"] is True


def test_missing_sections_are_not_measured_not_failures() -> None:
    rows = evaluate_targets({"ceiling": {}, "e2e": {}})
    assert rows and all(r["met"] is None for r in rows)
    assert "not measured" in markdown({})


def test_markdown_has_tables_and_ratios() -> None:
    md = markdown(_result())
    assert "| target | measured | bound | verdict |" in md
    assert "| e2e: worker_1 | 10 |" in md  # label falls back to the key
    assert "75%" in md and "30.0x" in md and "**missed**" in md


def test_fold_stacks_charges_the_deepest_named_stage() -> None:
    raw = "\n".join(
        [
            "run (workers/decide_loop.py:1);explain (models/registry.py:2);mm (torch:1) 30",
            "run (workers/decide_loop.py:1);_commit (x:1);model_dump_json (p:1) 10",
            "run (workers/decide_loop.py:1);idle (x:1) 10",
        ]
    )
    out = fold_stacks(raw)
    assert out["samples"] == 50
    assert out["stages"]["model explain (integrated gradients)"] == 60.0
    assert out["stages"]["serialise decisions (pydantic JSON)"] == 20.0
    assert out["stages"]["other"] == 20.0
    assert out["top_leaves"][0] == {"frame": "mm (torch:1)", "pct": 60.0}


def test_stage_summary_is_the_difference_between_two_scrapes() -> None:
    from benchmarks.harness import stage_summary

    before = {"decide": {"count": 10.0, "sum": 0.5, "0.01": 2.0, "0.1": 10.0, "+Inf": 10.0}}
    after = {
        "decide": {"count": 110.0, "sum": 2.5, "0.01": 52.0, "0.1": 109.0, "+Inf": 110.0},
        "commit": {"count": 0.0, "sum": 0.0, "+Inf": 0.0},  # no batch in between: left out
    }
    (row,) = stage_summary(before, after)
    assert row["stage"] == "decide" and row["batches"] == 100
    assert row["mean_ms"] == pytest.approx(20.0)  # 2.0 s over 100 batches
    assert row["p99_le_ms"] == pytest.approx(100.0)  # 99 of 100 new batches were <= 0.1 s
    text = markdown({**_result(), "latency_50": {**_result()["latency_50"], "stages": [row]}})
    assert "| decide | 100 | 20.0 | 100 |" in text
