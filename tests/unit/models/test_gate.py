"""Promotion gate decisions."""

from __future__ import annotations

from models.gate import GateConfig, evaluate_gate

CHAMP = {"roc_auc": 0.84, "pr_auc": 0.66, "brier": 0.140, "f1": 0.60}


def test_no_champion_promotes() -> None:
    verdict = evaluate_gate(CHAMP, None)
    assert verdict.promote and verdict.reasons == ["no champion"]


def test_beats_champion() -> None:
    verdict = evaluate_gate({**CHAMP, "roc_auc": 0.85}, CHAMP, GateConfig(margin=0.005))
    assert verdict.promote
    assert "beats champion" in verdict.reasons[0]


def test_does_not_beat_by_margin() -> None:
    for challenger_auc in (0.84, 0.843, 0.83):
        verdict = evaluate_gate(
            {**CHAMP, "roc_auc": challenger_auc}, CHAMP, GateConfig(margin=0.005)
        )
        assert not verdict.promote
        assert "does not beat" in verdict.reasons[0]


def test_guard_regression_blocks_even_when_primary_improves() -> None:
    worse_brier = {**CHAMP, "roc_auc": 0.86, "brier": 0.150}  # brier: lower is better
    verdict = evaluate_gate(worse_brier, CHAMP)
    assert not verdict.promote
    assert any("guard brier regresses" in r for r in verdict.reasons)
    within_tolerance = {**CHAMP, "roc_auc": 0.86, "brier": 0.143, "f1": 0.59}
    assert evaluate_gate(within_tolerance, CHAMP).promote
    better_brier = {**CHAMP, "roc_auc": 0.86, "brier": 0.100}
    assert evaluate_gate(better_brier, CHAMP).promote


def test_lower_is_better_primary_and_custom_guards() -> None:
    cfg = GateConfig(primary="log_loss", margin=0.0, guards={"roc_auc": 0.0})
    champ = {"log_loss": 0.45, "roc_auc": 0.84}
    assert evaluate_gate({"log_loss": 0.44, "roc_auc": 0.84}, champ, cfg).promote
    assert not evaluate_gate({"log_loss": 0.46, "roc_auc": 0.85}, champ, cfg).promote
    assert not evaluate_gate({"log_loss": 0.40, "roc_auc": 0.839}, champ, cfg).promote


def test_different_holdouts_or_missing_metrics_refuse() -> None:
    a = {**CHAMP, "roc_auc": 0.9, "holdout_fingerprint": "aaa"}
    b = {**CHAMP, "holdout_fingerprint": "bbb"}
    verdict = evaluate_gate(a, b)
    assert not verdict.promote and "same holdout" in verdict.reasons[0]
    verdict = evaluate_gate({"roc_auc": 0.9}, CHAMP)
    assert not verdict.promote and "no finite pr_auc" in verdict.reasons[0]
    assert evaluate_gate(CHAMP, None).to_dict() == {"promote": True, "reasons": ["no champion"]}
