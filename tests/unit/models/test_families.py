"""Each model family: fit/predict, contributions, save/load, torch reproducibility."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.metrics import roc_auc_score

from models.data import labels
from models.encoding import TabularEncoder
from models.families.skops_io import load_estimator
from models.family import (
    FAMILY_NAMES,
    ModelFamily,
    UnknownFamilyError,
    UnsafeArtifactError,
    get_family,
)
from models.spec import FeatureSpec

FAST = {"torch_mlp": {"epochs": 40}, "logreg": {}, "hgb": {"max_iter": 100}}


@pytest.fixture(scope="module")
def fitted(
    synth_split: tuple[pd.DataFrame, pd.DataFrame], synth_spec: FeatureSpec
) -> dict[str, ModelFamily]:
    train, _ = synth_split
    enc = TabularEncoder(synth_spec).fit(train)
    batch, y = enc.transform(train), labels(train, synth_spec)
    out = {}
    for name in FAMILY_NAMES:
        model = get_family(name)(enc, FAST[name], seed=0)
        model.to("cpu")
        out[name] = model.fit(batch, y)
    return out


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_family_fits_and_predicts(
    family: str,
    fitted: dict[str, ModelFamily],
    synth_split: tuple[pd.DataFrame, pd.DataFrame],
    synth_spec: FeatureSpec,
) -> None:
    _, hold = synth_split
    model = fitted[family]
    proba = model.predict_proba(model.encoder.transform(hold))
    assert proba.shape == (len(hold),) and proba.dtype == np.float64
    assert ((proba >= 0) & (proba <= 1)).all()
    assert roc_auc_score(labels(hold, synth_spec), proba) > 0.9


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_contributions_shape_and_driver_dominates(
    family: str,
    fitted: dict[str, ModelFamily],
    synth_split: tuple[pd.DataFrame, pd.DataFrame],
    synth_spec: FeatureSpec,
) -> None:
    _, hold = synth_split
    model = fitted[family]
    contrib = model.contributions(model.encoder.transform(hold))
    assert contrib.shape == (len(hold), len(synth_spec.feature_names))
    assert np.isfinite(contrib).all()
    importance = np.abs(contrib).mean(axis=0)
    assert synth_spec.feature_names[int(np.argmax(importance))] == "driver"
    # direction: a higher driver raises the positive-class score
    driver = synth_spec.feature_names.index("driver")
    high = hold["driver"].to_numpy() > 1.0
    assert contrib[high, driver].mean() > 0


def test_logreg_contributions_add_up_to_the_logit(
    fitted: dict[str, ModelFamily], synth_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    _, hold = synth_split
    model = fitted["logreg"]
    batch = model.encoder.transform(hold)
    pipe = model.pipeline  # type: ignore[attr-defined]
    logit = pipe.decision_function(model.encoder.design_matrix(batch)[0])
    intercept = pipe.named_steps["clf"].intercept_[0]
    np.testing.assert_allclose(model.contributions(batch).sum(axis=1) + intercept, logit, atol=1e-5)


def test_torch_integrated_gradients_complete(
    fitted: dict[str, ModelFamily], synth_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    _, hold = synth_split
    model = fitted["torch_mlp"]
    batch = model.encoder.transform(hold.head(64))
    contrib = model.contributions(batch)
    p = model.predict_proba(batch)
    base = model.encoder.baseline_categories
    base_batch = batch.take(np.zeros(1, dtype=np.int64))
    base_batch.numeric[:] = 0.0
    base_batch.categorical[:] = base
    p0 = model.predict_proba(base_batch)[0]
    logit = np.log(p / (1 - p)) - np.log(p0 / (1 - p0))
    # Riemann-sum IG: the attributions add up to logit(x) - logit(baseline), approximately.
    assert np.corrcoef(contrib.sum(axis=1), logit)[0, 1] > 0.99


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_save_load_round_trip(
    family: str,
    fitted: dict[str, ModelFamily],
    synth_split: tuple[pd.DataFrame, pd.DataFrame],
    tmp_path: Path,
) -> None:
    _, hold = synth_split
    model = fitted[family]
    files = model.save(tmp_path)
    assert "params.json" in files
    assert not any(f.endswith((".pkl", ".pickle", ".joblib")) for f in files)
    loaded = ModelFamily.load(tmp_path, model.encoder)
    batch = model.encoder.transform(hold)
    np.testing.assert_array_equal(loaded.predict_proba(batch), model.predict_proba(batch))
    assert loaded.params == model.params


def test_skops_allow_list_refuses_unknown_types(
    fitted: dict[str, ModelFamily], tmp_path: Path
) -> None:
    fitted["hgb"].save(tmp_path)
    path = tmp_path / "model.skops"
    assert sio.get_untrusted_types(file=path)  # the HGB dump does need an allow-list
    with pytest.raises(UnsafeArtifactError, match="outside the allow-list"):
        load_estimator(path, allowed=())


def test_torch_is_reproducible_with_a_seed(
    synth_split: tuple[pd.DataFrame, pd.DataFrame], synth_spec: FeatureSpec
) -> None:
    train, hold = synth_split
    enc = TabularEncoder(synth_spec).fit(train)
    batch, y, hb = enc.transform(train), labels(train, synth_spec), enc.transform(hold)
    cls = get_family("torch_mlp")

    def run(seed: int) -> np.ndarray:
        return cls(enc, {"epochs": 5}, seed=seed).to("cpu").fit(batch, y).predict_proba(hb)

    np.testing.assert_array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))


def test_torch_early_stopping_and_device(
    synth_split: tuple[pd.DataFrame, pd.DataFrame], synth_spec: FeatureSpec
) -> None:
    import torch

    train, hold = synth_split
    enc = TabularEncoder(synth_spec).fit(train)
    cls = get_family("torch_mlp")
    model = cls(enc, {"max_epochs": 60, "patience": 3}, seed=0)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert model.device.startswith(expected)
    model.to("cpu").fit(
        enc.transform(train),
        labels(train, synth_spec),
        enc.transform(hold),
        labels(hold, synth_spec),
    )
    info = model.fit_info
    assert 1 <= info["best_epoch"] <= info["epochs_run"] <= 60
    assert model.device == "cpu"


def test_unknown_family_and_params(synth_spec: FeatureSpec, synth_df: pd.DataFrame) -> None:
    with pytest.raises(UnknownFamilyError, match="unknown model family 'xgb'"):
        get_family("xgb")
    enc = TabularEncoder(synth_spec).fit(synth_df)
    with pytest.raises(ValueError, match="unknown parameter"):
        get_family("logreg")(enc, {"alpha": 1})


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_unknown_categories_and_empty_records_score(
    family: str, fitted: dict[str, ModelFamily], synth_spec: FeatureSpec
) -> None:
    from models.data import features_from_records

    model = fitted[family]
    frame = features_from_records([{"color": "purple", "flag": "maybe"}, {}], synth_spec)
    batch = model.encoder.transform(frame)
    proba = model.predict_proba(batch)
    assert proba.shape == (2,) and np.isfinite(proba).all()
    assert model.contributions(batch).shape == (2, len(synth_spec.feature_names))
