"""The spec's ``class_weight`` in every model family: rows weighed by class, unweighted when
unset, and the torch validation loss (early stopping) weighed alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.data import holdout_split, labels, load_frame
from models.encoding import TabularEncoder
from models.family import FAMILY_NAMES, ModelFamily, class_weights, get_family
from models.spec import FeatureSpec, load_spec, spec_from_mapping
from models.training import TrainedModel, train_family

# fast settings: fixed torch epochs (no validation), a short boosting run, no tuning
FAST = {"torch_mlp": {"epochs": 15}, "logreg": {}, "hgb": {"max_iter": 40}}


def _weighted(spec: FeatureSpec, class_weight: object) -> FeatureSpec:
    return spec_from_mapping({**spec.to_dict(), "class_weight": class_weight})


@pytest.fixture(scope="module")
def hmda() -> tuple[FeatureSpec, pd.DataFrame, pd.DataFrame]:
    """AER::HMDA: 2,380 mortgage applications, 12 % denied (the positive class)."""
    spec = load_spec("hmda")
    train, hold = holdout_split(load_frame(spec), spec, test_size=0.25, seed=0)
    return spec, train, hold


def _fit(family: str, train: pd.DataFrame, spec: FeatureSpec) -> TrainedModel:
    return train_family(family, train, spec, FAST[family], seed=0, device="cpu")


@pytest.fixture(scope="module")
def plain(hmda: tuple[FeatureSpec, pd.DataFrame, pd.DataFrame]) -> dict[str, TrainedModel]:
    """One unweighted fit per family (the spec has no class_weight)."""
    spec, train, _ = hmda
    return {family: _fit(family, train, spec) for family in FAMILY_NAMES}


def test_class_weights_resolve_none_balanced_and_explicit() -> None:
    y = np.array([0] * 8 + [1] * 2, dtype=np.int64)
    assert class_weights(None, y) is None
    assert class_weights("balanced", y) == pytest.approx({0: 10 / 16, 1: 10 / 4})
    assert class_weights({0: 1, 1: 3}, y) == {0: 1.0, 1: 3.0}
    # a class absent from the labels keeps weight 1 (no division by zero)
    assert class_weights("balanced", np.zeros(4, dtype=np.int64)) == {0: 0.5, 1: 1.0}


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_balanced_raises_the_rare_class_scores_and_recall(
    family: str,
    hmda: tuple[FeatureSpec, pd.DataFrame, pd.DataFrame],
    plain: dict[str, TrainedModel],
) -> None:
    spec, train, hold = hmda
    y = labels(hold, spec)
    assert 0.08 < y.mean() < 0.16  # imbalanced: ~12 % positives
    balanced = _fit(family, train, _weighted(spec, "balanced"))
    p_plain, p_bal = plain[family].score(hold), balanced.score(hold)
    # unweighted, the mean score tracks the positive rate; balanced pushes it towards 0.5
    assert p_bal.mean() > p_plain.mean() + 0.1
    recall_plain = float(((p_plain >= 0.5) & (y == 1)).sum() / y.sum())
    recall_bal = float(((p_bal >= 0.5) & (y == 1)).sum() / y.sum())
    assert recall_bal > recall_plain + 0.15
    expected = class_weights("balanced", labels(train, spec))
    assert balanced.model.fit_info["class_weight"] == pytest.approx(expected)
    assert "class_weight" not in plain[family].model.fit_info


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_explicit_weights_follow_the_mapping(
    family: str,
    hmda: tuple[FeatureSpec, pd.DataFrame, pd.DataFrame],
    plain: dict[str, TrainedModel],
) -> None:
    spec, train, hold = hmda
    unweighted = plain[family].score(hold)
    # weights of one are exactly the unweighted fit; a heavier positive class scores higher
    ones = _fit(family, train, _weighted(spec, {0: 1, 1: 1})).score(hold)
    np.testing.assert_allclose(ones, unweighted, rtol=0, atol=1e-12)
    heavy = _fit(family, train, _weighted(spec, {0: 1, 1: 4})).score(hold)
    assert heavy.mean() > unweighted.mean() + 0.05


def test_torch_validation_loss_is_weighted_like_training(
    hmda: tuple[FeatureSpec, pd.DataFrame, pd.DataFrame],
) -> None:
    spec, train, hold = hmda
    weighted = _weighted(spec, "balanced")
    enc = TabularEncoder(weighted).fit(train)
    y, yv = labels(train, spec), labels(hold, spec)
    model: ModelFamily = get_family("torch_mlp")(enc, {"max_epochs": 8, "patience": 3}, seed=0)
    model.to("cpu").fit(enc.transform(train), y, enc.transform(hold), yv)
    # early stopping restored the best epoch: its recorded loss is the WEIGHTED holdout loss
    p = np.clip(model.predict_proba(enc.transform(hold)), 1e-12, 1 - 1e-12)
    weights = class_weights("balanced", y)
    assert weights is not None
    w = np.where(yv == 1, weights[1], weights[0])
    losses = -(yv * np.log(p) + (1 - yv) * np.log(1 - p))
    assert model.fit_info["best_val_loss"] == pytest.approx(float(np.mean(w * losses)), rel=1e-4)
    assert model.fit_info["best_val_loss"] != pytest.approx(float(losses.mean()), rel=1e-2)


@pytest.mark.parametrize("family", ["logreg", "hgb"])
def test_weighted_sklearn_models_save_and_load(
    family: str, tmp_path: Path, hmda: tuple[FeatureSpec, pd.DataFrame, pd.DataFrame]
) -> None:
    spec, train, hold = hmda
    trained = _fit(family, train, _weighted(spec, {0: 1, 1: 3}))
    batch = trained.encoder.transform(hold)
    trained.model.save(tmp_path)
    loaded = ModelFamily.load(tmp_path, trained.encoder)
    np.testing.assert_array_equal(loaded.predict_proba(batch), trained.model.predict_proba(batch))
