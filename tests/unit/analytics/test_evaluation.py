"""Live quality on tiny frames: metrics per version/arm, decision rates, PSI, trigger rule."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analytics.evaluation import (
    decision_rates,
    drift_table,
    psi_categorical,
    psi_numeric,
    quality_table,
    retrain_trigger,
)
from models.spec import load_spec


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model_version": pd.array([1, 1, 1, 1, 2, 2, None], dtype="Int64"),
            "arm": ["champion"] * 4 + ["challenger"] * 2 + ["champion"],
            "score": [0.9, 0.8, 0.2, 0.6, 0.1, 0.7, None],
            "label": ["bad", "bad", "good", "good", "good", None, "bad"],
            "decision": ["decline", "decline", "approve", "review", "approve", "review", "review"],
        }
    )


def test_quality_per_version_and_arm() -> None:
    table = quality_table(_frame(), positive="bad").set_index(["model_version", "arm"])
    v1 = table.loc[(1, "champion")]
    # predictions at 0.5: [1, 1, 0, 1] vs truth [1, 1, 0, 0]
    assert v1["labelled"] == 4
    assert v1["accuracy"] == pytest.approx(0.75)
    assert v1["precision"] == pytest.approx(2 / 3)
    assert v1["recall"] == pytest.approx(1.0)
    assert v1["f1"] == pytest.approx(0.8)
    assert v1["roc_auc"] == pytest.approx(1.0)
    v2 = table.loc[(2, "challenger")]
    assert v2["decisions"] == 2 and v2["labelled"] == 1
    assert math.isnan(v2["roc_auc"])  # one class only
    fallback = table.loc[("none", "champion")]  # no model, no score: counted, not scored
    assert fallback["decisions"] == 1 and fallback["labelled"] == 0
    assert math.isnan(fallback["f1"])


def test_decision_rates() -> None:
    rates = decision_rates(_frame()).set_index(["model_version", "arm"])
    v1 = rates.loc[(1, "champion")]
    assert v1["n"] == 4
    assert (v1["approve_rate"], v1["review_rate"], v1["decline_rate"]) == (0.25, 0.25, 0.5)
    assert v1["other_rate"] == 0.0


def test_psi_is_zero_for_same_distribution_and_grows_with_shift() -> None:
    rng = np.random.default_rng(0)
    base = pd.Series(rng.normal(size=5000))
    assert psi_numeric(base, base) == pytest.approx(0.0, abs=1e-9)
    assert psi_numeric(base, pd.Series(rng.normal(size=5000))) < 0.02
    shifted = psi_numeric(base, pd.Series(rng.normal(1.0, size=5000)))
    assert shifted > 0.25
    # missing values form their own bin
    with_missing = pd.Series([*rng.normal(size=500), *[None] * 500], dtype="float64")
    assert psi_numeric(base, with_missing) > 0.25


def test_psi_categorical_pools_unseen_categories() -> None:
    train = pd.Series(["rent"] * 50 + ["owner"] * 50)
    assert psi_categorical(train, train.sample(frac=1, random_state=1)) == pytest.approx(0.0)
    unseen = pd.Series(["rent"] * 50 + ["castle"] * 50)
    assert psi_categorical(train, unseen) > 1.0


def test_drift_table_covers_every_feature_worst_first() -> None:
    spec = load_spec("credit_data")
    rng = np.random.default_rng(1)
    train = pd.DataFrame({c: rng.normal(size=400) for c in spec.feature_names})
    for c in spec.columns:
        if c.type != "numeric":
            train[c.name] = rng.choice(["a", "b"], size=400)
    recent = train.copy()
    recent["Amount"] = recent["Amount"] + 3
    table = drift_table(train, recent, spec)
    assert table["feature"].iloc[0] == "Amount"
    assert set(table["feature"]) == set(spec.feature_names)
    assert (table.loc[table["feature"] != "Amount", "psi"] < 1e-9).all()


def test_retrain_trigger_rule() -> None:
    quality = pd.DataFrame(
        {
            "model_version": [1, 2],
            "arm": ["champion", "challenger"],
            "labelled": [100, 100],
            "f1": [0.6, 0.1],
        }
    )
    drift = pd.DataFrame({"feature": ["Amount", "Age"], "psi": [0.05, 0.01]})
    calm = retrain_trigger(quality, drift, f1_floor=0.5, psi_limit=0.25)
    assert not calm.retrain and calm.reasons == []  # the challenger arm does not trigger
    assert calm.worst_f1 == pytest.approx(0.6)
    low = retrain_trigger(quality, drift, f1_floor=0.7)
    assert low.retrain and "below the floor" in low.reasons[0]
    drifted = retrain_trigger(quality, drift.assign(psi=[0.4, 0.01]), psi_limit=0.25)
    assert drifted.retrain and "Amount" in drifted.reasons[0]
    few = retrain_trigger(quality.assign(labelled=[10, 10]), drift, f1_floor=0.9)
    assert not few.retrain and few.worst_f1 is None  # too few labels to judge
