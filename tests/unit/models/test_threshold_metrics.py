"""Metrics at a chosen threshold, and the comparison's threshold, source and failure modes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import models.training as training
from models.compare import run_comparison
from models.data import DataError
from models.metrics import compute_metrics
from models.spec import FeatureSpec
from models.training import compare_families, comparison_markdown, evaluate, tune_family

Y = np.array([1, 0, 1, 1, 0, 0, 1, 0])
P = np.array([0.9, 0.8, 0.7, 0.4, 0.3, 0.2, 0.6, 0.1])


@pytest.mark.parametrize("threshold", [-0.1, 1.5, math.nan])
def test_threshold_outside_zero_one_is_refused(threshold: float) -> None:
    with pytest.raises(ValueError, match="must be a number in \\[0, 1\\]"):
        compute_metrics(Y, P, threshold=threshold)


def test_threshold_moves_the_hard_decision_metrics_only() -> None:
    low = compute_metrics(Y, P, threshold=0.35)
    # >= 0.35: 0.9 0.8 0.7 0.6 0.4 -> tp 4, fp 1: recall 1, precision 4/5
    assert low.recall == 1.0 and low.precision == pytest.approx(0.8)
    head = low.headline()
    assert head["threshold"] == 0.35 and head["recall@0.5"] == pytest.approx(0.75)
    assert low.roc_auc == compute_metrics(Y, P).roc_auc


def test_evaluate_and_compare_use_the_threshold(
    synth_split: tuple[pd.DataFrame, pd.DataFrame],
    synth_df: pd.DataFrame,
    synth_spec: FeatureSpec,
) -> None:
    train, hold = synth_split
    model = training.train_family("logreg", train, synth_spec, seed=0)
    at_low = evaluate(model, hold, threshold=0.05)
    assert at_low.at_threshold.threshold == 0.05
    assert at_low.recall >= evaluate(model, hold).recall
    table = compare_families(synth_spec, ["logreg"], df=synth_df, tune=False, threshold=0.05)
    assert table.attrs["threshold"] == 0.05
    assert table["recall"].to_numpy()[0] >= 0.99  # nearly every positive scores >= 0.05
    text = comparison_markdown(table, "cmd", "2026-11-23")
    assert "Threshold metrics (accuracy, precision, recall, f1) at 0.05." in text


def test_tuning_without_a_finite_metric_says_so(
    synth_split: tuple[pd.DataFrame, pd.DataFrame],
    synth_spec: FeatureSpec,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    train, _ = synth_split
    nan_metrics = compute_metrics(np.zeros(3, dtype=np.int64), np.array([0.1, 0.2, 0.3]))
    monkeypatch.setattr(training, "evaluate", lambda *a, **k: nan_metrics)
    # it used to be a bare AssertionError
    with pytest.raises(ValueError, match="cannot tune hgb: no candidate has a finite roc_auc"):
        tune_family("hgb", train, synth_spec, search_space=[{"max_iter": 5}])


def test_a_single_class_label_gives_a_clear_error_for_hgb_alone(
    synth_df: pd.DataFrame, synth_spec: FeatureSpec
) -> None:
    one_class = synth_df.assign(target="no")
    with pytest.raises(DataError, match="both classes"):
        compare_families(synth_spec, ["hgb"], df=one_class)


def test_run_comparison_writes_no_file_unless_asked(
    tmp_path: Path,
    synth_df: pd.DataFrame,
    synth_spec: FeatureSpec,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    csv = tmp_path / "synth.csv"
    synth_df.to_csv(csv, index=False)
    table = run_comparison(synth_spec, ["logreg"], source=str(csv), threshold=0.3)
    assert table.attrs["threshold"] == 0.3 and table.attrs["n_holdout"] == 160
    assert list(tmp_path.rglob("*.md")) == []  # no docs/model-comparison.md any more
    out = tmp_path / "report" / "comparison.md"
    run_comparison(synth_spec, ["logreg"], out=out, df=synth_df, command="cmd")
    assert "| logreg |" in out.read_text() and "`cmd`" in out.read_text()
