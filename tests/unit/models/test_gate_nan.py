"""A NaN metric never passes the gate: the challenger is refused, naming the metric, even
when there is no champion."""

from __future__ import annotations

import math

import numpy as np

from models.gate import GateConfig, evaluate_gate
from models.metrics import compute_metrics

GOOD = {"roc_auc": 0.84, "pr_auc": 0.66, "brier": 0.140, "f1": 0.60}


def test_nan_gate_metric_is_refused_without_a_champion() -> None:
    verdict = evaluate_gate({**GOOD, "roc_auc": math.nan}, None)
    assert not verdict.promote
    assert verdict.reasons == ["challenger has no finite roc_auc: roc_auc is NaN"]


def test_nan_guard_metric_is_refused_with_and_without_a_champion() -> None:
    nan_f1 = {**GOOD, "roc_auc": 0.9, "f1": math.nan}
    for champion in (None, GOOD):
        verdict = evaluate_gate(nan_f1, champion)
        assert not verdict.promote
        assert verdict.reasons == ["challenger has no finite f1: f1 is NaN"]


def test_every_non_finite_metric_is_named() -> None:
    # None is a NaN after a JSON round-trip (the pipeline's headline); inf is not finite either
    challenger = {"roc_auc": None, "pr_auc": math.inf, "brier": 0.1}
    verdict = evaluate_gate(challenger, None, GateConfig(guards={"pr_auc": 0.0, "f1": 0.0}))
    assert not verdict.promote
    assert verdict.reasons == [
        "challenger has no finite roc_auc: roc_auc is NaN (null)",
        "challenger has no finite pr_auc: pr_auc is inf (not finite)",
        "challenger has no finite f1: f1 is missing",
    ]


def test_metrics_of_a_single_class_holdout_never_pass() -> None:
    metrics = compute_metrics(np.zeros(6, dtype=np.int64), np.linspace(0.1, 0.6, 6))
    assert math.isnan(metrics.roc_auc)
    verdict = evaluate_gate(metrics, None)
    assert not verdict.promote
    assert "roc_auc is NaN" in verdict.reasons[0]
    assert any("pr_auc is NaN" in r for r in verdict.reasons)


def test_a_nan_champion_metric_refuses_too_and_finite_metrics_still_pass() -> None:
    verdict = evaluate_gate({**GOOD, "roc_auc": 0.9}, {**GOOD, "brier": math.nan})
    assert not verdict.promote and verdict.reasons == ["champion has no finite brier"]
    assert evaluate_gate(GOOD, None).reasons == ["no champion"]
