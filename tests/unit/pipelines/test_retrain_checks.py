"""The retrain pipeline's data check takes its minority floor from the spec; the gate refuses
a NaN challenger whatever the champion; a run's threshold reaches every metric it records."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from models.data import load_frame
from models.gate import GateConfig
from models.registry import ModelRegistry
from models.spec import FeatureSpec
from pipelines import run_retrain
from pipelines.report import write_retrain_report
from pipelines.retrain import DataValidationError, check_training_data, gate_verdict
from pipelines.workdir import validate_training_data
from tests.unit.card_default import card_spec


def _card(min_share: float | None = None) -> FeatureSpec:
    return card_spec(min_share)


@pytest.fixture(scope="module")
def card_df() -> pd.DataFrame:
    return load_frame(_card())


def test_card_default_at_three_percent_passes_the_default_floor(card_df: pd.DataFrame) -> None:
    summary = check_training_data(card_df, _card())
    assert summary["rows"] == 10_000 and summary["label_balance"] == {"No": 9667, "Yes": 333}


def test_the_spec_min_share_refuses_and_an_argument_overrides_it(card_df: pd.DataFrame) -> None:
    with pytest.raises(DataValidationError) as err:
        check_training_data(card_df, _card(min_share=0.05))
    assert "the rarer class is 3.3% of rows (at least 5.0% needed, label.min_share" in str(
        err.value
    )
    check_training_data(card_df, _card(min_share=0.05), min_minority_share=0.01)
    with pytest.raises(DataValidationError, match=r"at least 4\.0% needed"):
        check_training_data(card_df, _card(), min_minority_share=0.04)


def test_the_work_dir_step_uses_the_spec_floor(tmp_path: Path, card_df: pd.DataFrame) -> None:
    card_df.to_parquet(tmp_path / "data.parquet")
    strict = tmp_path / "strict.yaml"
    strict.write_text(_card(min_share=0.05).to_yaml())
    with pytest.raises(DataValidationError, match=r"rarer class is 3\.3%"):
        validate_training_data(str(tmp_path), str(strict))
    default = tmp_path / "card.yaml"
    default.write_text(_card().to_yaml())
    assert validate_training_data(str(tmp_path), str(default))["holdout_rows"] == 2000


def test_a_single_class_label_is_named_with_its_fix(card_df: pd.DataFrame) -> None:
    with pytest.raises(DataValidationError) as err:
        check_training_data(card_df.assign(default="No"), _card())
    text = str(err.value)
    assert "rarer class is 0.0% of rows" in text
    assert "no row of label column 'default' equals the positive class 'Yes'" in text


GOOD = {"roc_auc": 0.8, "pr_auc": 0.5, "brier": 0.1, "f1": 0.5}


def test_gate_verdict_refuses_a_nan_challenger_even_when_the_champion_cannot_score() -> None:
    broken = RuntimeError("tampered")
    nan = {**GOOD, "roc_auc": None}  # NaN after json_safe
    verdict, champion = gate_verdict(nan, broken, pd.DataFrame(), GateConfig(), 3)
    assert verdict == {
        "promote": False,
        "reasons": ["challenger has no finite roc_auc: roc_auc is NaN (null)"],
    }
    assert champion is None
    verdict, _ = gate_verdict(GOOD, broken, pd.DataFrame(), GateConfig(), 3)
    assert verdict["promote"] and "champion v3 cannot score the holdout" in verdict["reasons"][0]
    verdict, _ = gate_verdict({**GOOD, "f1": math.nan}, None, pd.DataFrame(), GateConfig())
    assert not verdict["promote"] and "f1 is NaN" in verdict["reasons"][0]


def test_a_runs_threshold_reaches_candidates_gate_and_registry(
    tmp_path: Path, synth_df: pd.DataFrame, synth_spec: FeatureSpec
) -> None:
    spec = tmp_path / "synthetic.yaml"
    spec.write_text(synth_spec.to_yaml())
    registry = str(tmp_path / "reg")
    for run in ("a", "b"):  # b: the champion is scored at the same threshold
        result = run_retrain(
            str(tmp_path / run),
            str(spec),
            registry,
            "synthetic",
            ["logreg"],
            frame=synth_df,
            tune=False,
            min_rows=100,
            optimise=False,
            threshold=0.2,
        )
    assert result["evaluation"]["threshold"] == 0.2
    gate = json.loads((tmp_path / "b" / "gate.json").read_text())
    assert gate["challenger"]["threshold"] == 0.2 and gate["champion"]["threshold"] == 0.2
    version = ModelRegistry(registry).list_versions("synthetic")[-1]
    assert version.metrics["threshold"] == 0.2
    # the run's report: hard labels (confusion matrices) at the run's cut-off, PR curve kept
    report = write_retrain_report(
        str(tmp_path / "b"), str(tmp_path / "reports"), "2026-11-23", "b", registry_url=registry
    )
    html = (Path(report["report_dir"]) / "evaluation.html").read_text()
    assert "at cut-off 0.20" in html and "Precision-recall curve" in html
