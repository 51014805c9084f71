"""The benchmark's verdict rules on hand-made results (no services, no timing: nothing here
measures anything)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from benchmarks.targets import (
    TARGETS,
    client_choice,
    client_choice_line,
    draws_verdict,
    evaluate_targets,
    ratio,
    verdicts,
)
from tests.unit.benchmarks.sample_results import passing

pytestmark = pytest.mark.unit


def _rows(res: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["target"]: r for r in evaluate_targets(res)}


W2 = "confluent, 2 workers: decisions/s"
C1 = "confluent, 1 worker / confluent EOS ceiling"
K1 = "kafka-python, 1 worker / kafka-python EOS ceiling"
P99 = "p99 latency at 50 % of the 1-worker max rate (confluent)"
RSS = "worker RSS growth over the soak"
ENG = "engine in process, µs per event (batch 500)"


def test_ratio_handles_missing_and_zero() -> None:
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(None, 2.0) is None
    assert ratio(1.0, 0.0) is None
    assert ratio(float("nan"), 1.0) is None


def test_a_result_meeting_every_target() -> None:
    rows = _rows(passing())
    assert set(rows) == {W2, C1, K1, P99, RSS, ENG}
    assert all(r["met"] is True for r in rows.values())
    assert rows[ENG]["value"] == pytest.approx(12.0) and rows[ENG]["bound"] == "<= 15 µs"
    assert "gradient_x_input, review+decline only" in rows[ENG]["context"]
    assert rows[W2]["value"] == 45_000.0 and rows[W2]["bound"] == ">= 40,000/s"
    assert rows[C1]["value"] == pytest.approx(0.75)
    assert rows[K1]["value"] == pytest.approx(0.75)
    assert rows[P99]["value"] == 80.0 and rows[P99]["bound"] == "<= 100 ms"
    assert rows[RSS]["value"] == pytest.approx(850 / 800 - 1)


def test_every_absolute_figure_has_the_run_ceilings_beside_it() -> None:
    rows = _rows(passing())
    assert "confluent 80,000/s" in rows[W2]["context"]
    assert "kafka-python 14,000/s" in rows[W2]["context"]
    assert "60,000/s vs confluent EOS ceiling 80,000/s" in rows[C1]["context"]
    assert "10,500/s vs kafka-python EOS ceiling 14,000/s" in rows[K1]["context"]
    assert "EOS ceilings this run" in rows[P99]["context"]


def _set(path: tuple[str, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(res: dict[str, Any]) -> None:
        node = res
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return apply


def _p99(value: float) -> Callable[[dict[str, Any]], None]:
    def apply(res: dict[str, Any]) -> None:
        res["latency"]["points"][2]["p99"] = value

    return apply


def _last_rss(value: float) -> Callable[[dict[str, Any]], None]:
    def apply(res: dict[str, Any]) -> None:
        res["soak"]["samples"][-1]["rss_mib"] = [value]

    return apply


def _engine_total(seconds: float) -> Callable[[dict[str, Any]], None]:
    def apply(res: dict[str, Any]) -> None:
        res["scoring"]["rows"][1]["seconds"]["engine total: process + records()"] = seconds

    return apply


@pytest.mark.parametrize(
    ("missed", "change"),
    [
        (W2, _set(("workers", "confluent_2", "rate"), 39_999.0)),
        (C1, _set(("workers", "confluent_1", "rate"), 0.69 * 80_000)),
        (C1, _set(("ceiling", "confluent", "rate"), 90_000.0)),  # same worker, faster ceiling
        (K1, _set(("workers", "kafka-python_1", "rate"), 0.69 * 14_000)),
        (P99, _p99(100.5)),
        (RSS, _last_rss(880.0)),  # exactly +10 % is a miss: the bound is strict
        (ENG, _engine_total(0.0076)),  # 15.2 µs per event at batch 500
    ],
)
def test_a_result_missing_one_target(missed: str, change: Callable[[dict[str, Any]], None]) -> None:
    res = copy.deepcopy(passing())
    change(res)
    rows = _rows(res)
    assert rows[missed]["met"] is False
    assert all(r["met"] is True for name, r in rows.items() if name != missed)


def test_the_latency_bound_follows_max_wait() -> None:
    res = passing()
    res["latency"]["max_wait_ms"] = 20
    row = _rows(res)[P99]
    assert row["bound"] == "<= 70 ms" and row["met"] is False  # p99 80 ms


def test_missing_sections_are_not_measured_not_failures() -> None:
    rows = evaluate_targets({"meta": {"mode": "full"}})
    assert {r["target"] for r in rows} == {W2, C1, K1, P99, RSS, ENG}
    assert all(r["met"] is None for r in rows)


def test_a_soak_with_one_sample_is_not_measured() -> None:
    res = passing()
    res["soak"]["samples"] = res["soak"]["samples"][:1]
    assert _rows(res)[RSS]["met"] is None


def test_soak_with_two_workers_judges_each() -> None:
    res = passing()
    res["soak"]["samples"] = [{"rss_mib": [100.0, 100.0]}, {"rss_mib": [105.0, 120.0]}]
    rows = _rows(res)
    assert rows[f"{RSS} (worker 1)"]["met"] is True
    assert rows[f"{RSS} (worker 2)"]["met"] is False


def test_only_a_full_run_draws_verdicts() -> None:
    res = passing()
    assert draws_verdict(res) and verdicts(res) == evaluate_targets(res)
    for mode in ("quick", "warm-up"):
        res["meta"]["mode"] = mode
        assert not draws_verdict(res) and verdicts(res) == []
    assert draws_verdict({})  # a result without a mode counts as a full run


def test_client_choice_reports_the_ratio_for_one_worker() -> None:
    res = passing()
    choice = client_choice(res)
    assert choice["confluent_over_kafka_python"] == pytest.approx(60_000 / 10_500)
    assert choice["faster"] == "confluent" and choice["supports_default"] is True
    assert "This run supports that default" in client_choice_line(res)
    res["workers"]["kafka-python_1"]["rate"] = 70_000.0
    assert client_choice(res)["supports_default"] is False
    assert "**contradicts**" in client_choice_line(res)


def test_quick_mode_states_the_client_ratio_without_judging_it() -> None:
    res = passing()
    res["meta"]["mode"] = "quick"
    line = client_choice_line(res)
    assert "5.71x" in line and "supports" not in line and "contradicts" not in line


def test_targets_are_the_issue_14_numbers() -> None:
    assert TARGETS == {
        "confluent_2_workers_rate": 40_000.0,
        "worker_vs_ceiling": 0.70,
        "p99_slack_ms": 50.0,
        "rss_growth": 0.10,
        "engine_us": 15.0,
    }
