"""Explanation methods per family: shapes, fallbacks, ``none``, exactness of tree paths,
agreement with the slower methods on a clear synthetic case; columns entry points of Model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from models.data import features_from_records, labels
from models.encoding import TabularEncoder
from models.explain import EXPLAIN_METHODS, top_k_agreement, top_k_sets
from models.families.hgb import HGBFamily
from models.family import FAMILY_NAMES, ModelFamily
from models.model import Model
from models.spec import FeatureSpec

FAST = {"torch_mlp": {"epochs": 40}, "logreg": {}, "hgb": {"max_iter": 100}}
SUPPORTED = {
    "torch_mlp": ("integrated_gradients", "gradient_x_input"),
    "hgb": ("tree_path", "occlusion"),
    "logreg": ("linear",),
}


@pytest.fixture(scope="module")
def models(
    synth_split: tuple[pd.DataFrame, pd.DataFrame], synth_spec: FeatureSpec
) -> dict[str, Model]:
    train, _ = synth_split
    enc = TabularEncoder(synth_spec).fit(train)
    batch, y = enc.transform(train), labels(train, synth_spec)
    out = {}
    for name in FAMILY_NAMES:
        from models.family import get_family

        family = get_family(name)(enc, FAST[name], seed=0).to("cpu").fit(batch, y)
        out[name] = Model(family=name, spec=synth_spec, encoder=enc, model=family)
    return out


@pytest.fixture(scope="module")
def hold(synth_split: tuple[pd.DataFrame, pd.DataFrame], synth_spec: FeatureSpec) -> pd.DataFrame:
    _, holdout = synth_split
    return holdout[synth_spec.feature_names].reset_index(drop=True)


def columns_of(frame: pd.DataFrame) -> dict[str, list[Any]]:
    return {c: [None if pd.isna(v) else v for v in frame[c].tolist()] for c in frame.columns}


@pytest.mark.parametrize("family", FAMILY_NAMES)
@pytest.mark.parametrize("method", [m for m in EXPLAIN_METHODS if m != "none"])
def test_every_method_gives_finite_contributions_or_the_family_default(
    family: str, method: str, models: dict[str, Model], hold: pd.DataFrame
) -> None:
    model = models[family]
    contributions, used = model.model.explain(model.encode(hold), method)
    assert contributions.shape == (len(hold), len(model.feature_names))
    assert contributions.dtype == np.float64 and np.isfinite(contributions).all()
    expected = method if method in SUPPORTED[family] else SUPPORTED[family][0]
    assert used == expected
    if family == "logreg":
        assert used == "linear"


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_none_computes_nothing(
    family: str, models: dict[str, Model], hold: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = models[family]

    def boom(*args: object) -> None:
        raise AssertionError("explained")

    monkeypatch.setattr(model.model, "_explain", boom)
    contributions, used = model.model.explain(model.encode(hold.head(5)), "none")
    assert used == "none" and contributions.shape == (5, 4) and not contributions.any()


def test_unknown_method_and_empty_batch(models: dict[str, Model], hold: pd.DataFrame) -> None:
    fam = models["torch_mlp"].model
    with pytest.raises(ValueError, match="unknown explain method 'shap'"):
        fam.explain(models["torch_mlp"].encode(hold.head(2)), "shap")
    empty, used = fam.explain(models["torch_mlp"].encode(hold.head(0)), "gradient_x_input")
    assert empty.shape == (0, 4) and used == "gradient_x_input"


def test_default_contributions_are_the_first_method(
    models: dict[str, Model], hold: pd.DataFrame
) -> None:
    for family, model in models.items():
        batch = model.encode(hold.head(50))
        default, _ = model.model.explain(batch, SUPPORTED[family][0])
        np.testing.assert_array_equal(model.model.contributions(batch), default)


def _logit(model: ModelFamily, batch: Any) -> np.ndarray:
    p = model.predict_proba(batch)
    return np.log(p) - np.log1p(-p)


def test_tree_path_adds_up_to_the_logit_exactly(
    models: dict[str, Model], hold: pd.DataFrame, synth_spec: FeatureSpec
) -> None:
    model = models["hgb"]
    fam = model.model
    assert isinstance(fam, HGBFamily)
    odd = features_from_records(  # unknown category, missing values, an empty row
        [{"color": "purple", "flag": "maybe", "driver": None}, {}], synth_spec
    )
    for frame in (hold, odd):
        batch = model.encode(frame)
        contributions, used = fam.explain(batch, "tree_path")
        raw = fam._fitted().decision_function(fam._design(batch))
        assert used == "tree_path"
        np.testing.assert_allclose(contributions.sum(axis=1) + fam.expected_logit(), raw, atol=1e-9)


def test_tree_path_survives_save_and_load(
    models: dict[str, Model], hold: pd.DataFrame, tmp_path: Path
) -> None:
    fam = models["hgb"].model
    batch = models["hgb"].encode(hold)
    fam.save(tmp_path)
    loaded = ModelFamily.load(tmp_path, fam.encoder)
    np.testing.assert_allclose(
        loaded.explain(batch, "tree_path")[0], fam.explain(batch, "tree_path")[0], atol=1e-12
    )


def test_gradient_x_input_is_zero_at_the_baseline_and_tracks_the_logit(
    models: dict[str, Model], hold: pd.DataFrame
) -> None:
    fam = models["torch_mlp"].model
    batch = models["torch_mlp"].encode(hold)
    base = batch.take(np.zeros(1, dtype=np.int64))
    base.numeric[:] = 0.0
    base.categorical[:] = fam.encoder.baseline_categories
    at_base, _ = fam.explain(base, "gradient_x_input")
    np.testing.assert_allclose(at_base, 0.0, atol=1e-6)
    gxi, _ = fam.explain(batch, "gradient_x_input")
    delta = _logit(fam, batch) - _logit(fam, base)[0]
    assert np.corrcoef(gxi.sum(axis=1), delta)[0, 1] > 0.95


@pytest.mark.parametrize(
    ("family", "fast", "slow"),
    [("torch_mlp", "gradient_x_input", "integrated_gradients"), ("hgb", "tree_path", "occlusion")],
)
def test_cheap_methods_agree_on_the_driver(
    family: str, fast: str, slow: str, models: dict[str, Model], hold: pd.DataFrame
) -> None:
    """The label follows ``driver`` only: both methods should blame it, row by row."""
    fam = models[family].model
    batch = models[family].encode(hold)
    a, _ = fam.explain(batch, fast)
    b, _ = fam.explain(batch, slow)
    driver = models[family].feature_names.index("driver")
    value = hold["driver"].to_numpy()
    strong = np.abs(value) > 0.5  # far from the baseline: the driver must dominate
    for c in (a, b):
        assert (np.abs(c[strong]).argmax(axis=1) == driver).mean() > 0.95
    high = value > 0.5  # the driver raises the risk: it is the top reason of both
    assert (a[high, driver] > 0).mean() > 0.95
    assert top_k_agreement(a[high], b[high], k=1) > 0.95


def test_top_k_agreement() -> None:
    a = np.array([[0.3, 0.2, 0.1, -1.0], [0.0, -1.0, np.nan, 0.5], [0.1, 0.1, 0.1, 0.1]])
    assert top_k_agreement(a, a) == 1.0
    b = a.copy()
    b[0] = [0.1, 0.2, 0.3, -1.0]  # same top-3 set, other order: agrees
    b[1] = [0.5, -1.0, np.nan, 0.0]  # another feature: disagrees
    assert top_k_agreement(a, b, k=3) == pytest.approx(2 / 3)
    assert top_k_agreement(a, b, k=1) == pytest.approx(1 / 3)
    # ties keep feature order; only positive finite values count
    np.testing.assert_array_equal(top_k_sets(a, 2)[2], [True, True, False, False])
    np.testing.assert_array_equal(top_k_sets(a, 3)[1], [False, False, False, True])
    assert np.isnan(top_k_agreement(a[:0], b[:0]))
    with pytest.raises(ValueError, match="shapes differ"):
        top_k_agreement(a, b[:, :2])


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_model_columns_entry_points_equal_the_frame_ones(
    family: str, models: dict[str, Model], hold: pd.DataFrame
) -> None:
    model = models[family]
    columns, n = columns_of(hold), len(hold)
    np.testing.assert_array_equal(model.score_columns(columns, n), model.score(hold))
    method = SUPPORTED[family][-1]
    contributions, used = model.explain_columns(columns, n, method)
    expected, expected_used = model.model.explain(model.encode(hold), method)
    assert used == expected_used == method
    np.testing.assert_allclose(contributions, expected, atol=1e-12)

    scored = model.score_with_explainer(columns, n, method)
    np.testing.assert_array_equal(scored.scores, model.score(hold))
    assert scored.method_used is None
    rows = np.array([3, 0, 7], dtype=np.intp)
    np.testing.assert_allclose(scored.explain(rows), expected[rows], rtol=1e-5, atol=1e-6)
    assert scored.method_used == method
