"""The benchmark's Markdown report and its helpers on hand-made results (no services, no
timing: nothing here measures anything)."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.profile import WAITING, fold_stacks, stage_seconds
from benchmarks.report import markdown, per_event_us, stage_grid
from tests.unit.benchmarks.sample_results import passing

pytestmark = pytest.mark.unit


def _mode(mode: str) -> dict[str, Any]:
    res = passing()
    res["meta"] = {**res["meta"], "mode": mode}
    return res


def test_full_mode_prints_verdicts_with_the_ceilings_beside_them() -> None:
    res = passing()
    res["workers"]["confluent_2"]["rate"] = 39_000.0
    md = markdown(res)
    assert "| target | measured | bound | beside it (this run) | verdict |" in md
    assert "| met |" in md and "**missed**" in md and "draws no verdict" not in md
    assert "| confluent, 2 workers: decisions/s | 39,000 | >= 40,000/s |" in md
    assert "EOS ceilings this run: confluent 80,000/s, kafka-python 14,000/s" in md
    assert "This run supports that default" in md


def test_quick_mode_prints_no_verdict() -> None:
    res = _mode("quick")  # the same numbers that draw met and missed in full mode
    res["workers"]["confluent_2"]["rate"] = 39_000.0
    md = markdown(res)
    assert "quick mode is a smoke run" in md.lower() and "draws no verdict" in md
    for verdict_text in ("| verdict |", "| met |", "**missed**", "not measured", "supports"):
        assert verdict_text not in md
    assert "39,000" in md and "60,000" in md  # the measurements are still reported
    assert "confluent / kafka-python = 5.71x" in md


def test_a_warm_up_run_prints_no_verdict() -> None:
    md = markdown(_mode("warm-up"))
    assert "draws no verdict" in md and "**missed**" not in md and "| met |" not in md


def test_an_empty_result_renders() -> None:
    md = markdown({})
    assert "not measured" in md and "n/a" in md


def test_throughput_rows_carry_their_own_client_ceiling() -> None:
    md = markdown(passing())
    assert "| workers: confluent_1 | 10 | n/a | 60,000 | 80,000 | 75% |" in md
    assert "| workers: kafka-python_1 | 10 | n/a | 10,500 | 14,000 | 75% |" in md
    assert "| ceiling: confluent | 10 | n/a | 80,000 | 80,000 | 100% |" in md


def test_latency_sweep_and_soak_sections() -> None:
    res = passing()
    res["latency"]["points"][2]["stages"] = [
        {"stage": "decide", "batches": 100, "mean_ms": 20.0, "p99_le_ms": 50.0}
    ]
    res["sweep"] = {
        "client": "confluent",
        "load_rate": 30_000.0,
        "points": [
            {"batch": 500, "wait_ms": 50, "txn_max_events": 2000, "rate": 55_000.0,
             "p50": 40.0, "p99": 90.0, "achieved_rate": 30_000.0},
            {"batch": 50, "wait_ms": 50, "txn_max_events": 0, "rate": 9_000.0,
             "note": "capacity below the fixed load rate: latency not measured"},
        ],
    }  # fmt: skip
    md = markdown(res)
    assert "| 50 % | 30,000 |" in md and "| decide | | | 20.0 |" not in md
    assert "| stage | 50 % |" in md and "| decide | 20.0 |" in md
    assert "| 500 | 50 | 2000 | 55,000 | 40 ms | 90 ms | 30,000 |  |" in md
    assert "capacity below the fixed load rate" in md
    assert "| 600 | 850.0 |" in md  # the soak's last sample


def test_stage_grid_is_generic_over_stage_names() -> None:
    cols = [{"decode": 1.0, "score": 2.0}, {"decode": 0.5, "columnar encode": 0.25}]
    assert stage_grid(cols) == [
        ["decode", "1.0", "0.5"],
        ["score", "2.0", ""],
        ["columnar encode", "", "0.2"],
    ]


def test_engine_stage_table_prints_us_per_event_for_any_stages() -> None:
    res = passing()
    res["scoring"] = {
        "device": {"device": "cpu", "cuda": "no CUDA device available"},
        "family": "torch_mlp",
        "rows": [
            {"batch": 100, "seconds": {"decode (msgspec)": 0.0005, "engine total": 0.004}},
            {"batch": 1000, "seconds": {"decode (msgspec)": 0.004, "engine total": 0.03},
             "errors": {"old stage": "AttributeError: gone"}},
        ],
    }  # fmt: skip
    md = markdown(res)
    assert "| stage | 100 | 1000 |" in md
    assert "| decode (msgspec) | 5.0 | 4.0 |" in md
    assert "| engine total | 40.0 | 30.0 |" in md
    assert "`old stage` not timed: AttributeError: gone" in md
    assert per_event_us({"x": 0.002}, 1000) == {"x": pytest.approx(2.0)}
    assert per_event_us({"x": 1.0}, 0) == {}


def test_reason_agreement_line_only_when_measured() -> None:
    assert "Reason-method agreement" not in markdown(passing())
    res = passing()
    res["reasons"] = {
        "k": 3, "rows": 4454, "agreement": 0.873,
        "methods": ["integrated_gradients", "gradient_x_input"],
        "methods_used": ["integrated_gradients", "gradient_x_input"], "seconds": [1.0, 0.1],
    }  # fmt: skip
    md = markdown(res)
    assert "Top-3 reason features equal in 87% of 4454 credit_data rows" in md
    assert "`integrated_gradients` vs `gradient_x_input` (torch_mlp" in md


def test_fold_stacks_charges_the_deepest_named_stage() -> None:
    raw = "\n".join(
        [
            "run (workers/decide_loop.py:1);explain (models/registry.py:2);mm (torch:1) 30",
            "run (workers/decide_loop.py:1);_commit (x:1);model_dump_json (p:1) 10",
            "run (workers/decide_loop.py:1);send (workers/kafka_confluent.py:9) 5",
            "run (workers/decide_loop.py:1);idle (x:1) 5",
            "run (workers/engine.py:1);Condition.wait (threading.py:331) 7",
            "_bootstrap (threading.py:1);_worker (concurrent/futures/thread.py:81) 3",
        ]
    )
    out = fold_stacks(raw)
    assert out["stages"][WAITING] == 16.7  # 10 of 60: parked threads are not work
    raw = "\n".join(raw.splitlines()[:4])
    out = fold_stacks(raw)
    assert out["samples"] == 50
    assert out["stages"]["model explain (reason contributions)"] == 60.0
    assert out["stages"]["serialise decisions (JSON)"] == 20.0
    assert out["stages"]["kafka produce (send)"] == 10.0
    assert out["stages"]["other"] == 10.0
    assert out["top_leaves"][0] == {"frame": "mm (torch:1)", "pct": 60.0}


def test_profile_table_prints_python_time_per_event() -> None:
    prof = {"samples": 800, "rate_hz": 100, "stages": {"policy decide": 25.0, "other": 75.0}}
    assert stage_seconds(prof) == {"policy decide": 2.0, "other": 6.0}
    res = {**passing(), "profile": {**prof, "events": 40_000, "seconds": 8}}
    assert "| policy decide | 25.0 | 50.0 |" in markdown(res)  # 2 s / 40k events


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


def test_the_report_says_the_broker_was_warmed_up_untimed() -> None:
    res = {**passing(), "broker_warmup": {"events": 200_000, "seconds": 3.0, "rate": 66_666.7}}
    md = markdown(res)
    assert "broker warm-up before the first phase (untimed, not a result): 200000 events" in md
    assert "broker warm-up" not in markdown(passing())
