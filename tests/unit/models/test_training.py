"""Training functions: honest tuning and the comparison table."""

from __future__ import annotations

import pandas as pd
import pytest

from models.data import data_fingerprint
from models.spec import FeatureSpec
from models.training import compare_families, comparison_markdown, evaluate, tune_family


def test_tune_family_chooses_on_inner_split_and_refits_on_train(
    synth_split: tuple[pd.DataFrame, pd.DataFrame], synth_spec: FeatureSpec
) -> None:
    train, hold = synth_split
    space = [
        {"hidden": 16, "depth": 1, "max_epochs": 30},
        {"hidden": 32, "depth": 1, "max_epochs": 30},
    ]
    model = tune_family("torch_mlp", train, synth_spec, seed=0, search_space=space, device="cpu")
    assert len(model.tuning) == 2
    assert all("valid_roc_auc" in t for t in model.tuning)
    best = max(model.tuning, key=lambda t: t["valid_roc_auc"])
    assert model.params["hidden"] == best["params"]["hidden"]
    assert model.params["epochs"] == best["fit_info"]["best_epoch"]  # refit for that many
    assert model.n_train == len(train)
    assert model.train_fingerprint == data_fingerprint(train)
    # the encoder saw the training part only
    assert model.encoder.state["noise"]["mean"] == pytest.approx(train.noise.mean())
    assert evaluate(model, hold).roc_auc > 0.9


def test_logreg_tuning_uses_grid(
    synth_split: tuple[pd.DataFrame, pd.DataFrame], synth_spec: FeatureSpec
) -> None:
    train, _ = synth_split
    model = tune_family("logreg", train, synth_spec, seed=0)
    assert len(model.tuning) == 7
    assert model.params["C"] in {t["params"]["C"] for t in model.tuning}


def test_compare_families_table_and_markdown(
    synth_df: pd.DataFrame, synth_spec: FeatureSpec
) -> None:
    table = compare_families(synth_spec, ["logreg", "hgb"], seed=0, df=synth_df, tune=False)
    assert list(table.index) == ["logreg", "hgb"]
    assert {"roc_auc", "pr_auc", "f1", "brier", "fit_seconds", "params"} <= set(table.columns)
    assert (table["roc_auc"] > 0.9).all()
    assert table.attrs["n_holdout"] == 160 and table.attrs["seed"] == 0
    text = comparison_markdown(table, "python -m models.compare --seed 0", "2026-11-23")
    assert "| logreg |" in text and "seed: 0" in text and "2026-11-23" in text
