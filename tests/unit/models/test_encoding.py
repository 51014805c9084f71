"""TabularEncoder: fitted on training rows only, unknown categories, JSON round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.data import features_from_records
from models.encoding import EncoderError, TabularEncoder
from models.spec import FeatureSpec, spec_from_mapping


def test_encoder_is_fitted_on_training_rows_only(
    credit_split: tuple[pd.DataFrame, pd.DataFrame],
    credit_df: pd.DataFrame,
    credit_spec: FeatureSpec,
) -> None:
    train, hold = credit_split
    hold = hold.copy()
    hold.loc[:20, "Home"] = "houseboat"  # a category that exists only in the holdout
    enc = TabularEncoder(credit_spec).fit(train)
    full = TabularEncoder(credit_spec).fit(pd.concat([train, hold]))

    # Seniority: no missing, no transform -> mean/std are plain train statistics.
    st = enc.state["Seniority"]
    assert st["mean"] == pytest.approx(train.Seniority.mean())
    assert st["std"] == pytest.approx(train.Seniority.std(ddof=0))
    assert st["mean"] != pytest.approx(credit_df.Seniority.mean(), abs=1e-9)
    assert full.state["Seniority"]["mean"] != pytest.approx(st["mean"], abs=1e-9)
    # Income: median imputation value is the train median (of the log1p-transformed values).
    train_median = float(np.median(np.log1p(train.Income.dropna())))
    assert enc.state["Income"]["fill"] == pytest.approx(train_median)
    assert enc.state["Income"]["ind_mean"] == pytest.approx(train.Income.isna().mean())
    assert enc.state["Income"]["ind_mean"] != pytest.approx(
        full.state["Income"]["ind_mean"], abs=1e-9
    )
    # Vocabulary: exactly the training categories.
    assert set(enc.state["Home"]["vocab"]) == set(train.Home.dropna())
    assert "houseboat" not in enc.vocabulary("Home")
    assert "houseboat" in full.vocabulary("Home")


def test_unknown_and_missing_categories_never_crash(
    credit_split: tuple[pd.DataFrame, pd.DataFrame], credit_spec: FeatureSpec
) -> None:
    train, _ = credit_split
    enc = TabularEncoder(credit_spec).fit(train)
    batch = features_from_records(
        [{"Home": "castle", "Marital": None, "Job": 17, "Records": "maybe", "Age": "n/a"}],
        credit_spec,
    )
    out = enc.transform(batch)
    home, marital, job = out.categorical[0]
    assert enc.vocabulary("Home")[home] == "<unk>"
    assert enc.vocabulary("Marital")[marital] == "<missing>"
    assert enc.vocabulary("Job")[job] == "<unk>"
    assert np.isfinite(out.numeric).all()
    assert out.numeric.dtype == np.float32 and out.categorical.dtype == np.int64


def test_transform_layout_and_json_round_trip(
    credit_split: tuple[pd.DataFrame, pd.DataFrame], credit_spec: FeatureSpec
) -> None:
    train, hold = credit_split
    enc = TabularEncoder(credit_spec).fit(train)
    a = enc.transform(hold)
    assert a.numeric.shape == (len(hold), 13)  # 10 numeric/boolean + 3 missing indicators
    assert a.categorical.shape == (len(hold), 3)
    assert a.feature_names == tuple(credit_spec.feature_names)
    assert "Income__missing" in a.numeric_names
    assert credit_spec.feature_names[a.numeric_groups[a.numeric_names.index("Debt__missing")]] == (
        "Debt"
    )
    again = TabularEncoder.from_json(enc.to_json(), credit_spec)
    b = again.transform(hold)
    np.testing.assert_array_equal(a.numeric, b.numeric)
    np.testing.assert_array_equal(a.categorical, b.categorical)
    # training-time standardisation: train rows have mean 0 on every numeric column
    np.testing.assert_allclose(enc.transform(train).numeric.mean(axis=0), 0.0, atol=1e-5)
    onehot = enc.one_hot(a)
    assert onehot.shape == (len(hold), sum(enc.cardinalities))
    np.testing.assert_array_equal(onehot.sum(axis=1), 3.0)


def test_records_and_frames_encode_identically(
    credit_split: tuple[pd.DataFrame, pd.DataFrame], credit_spec: FeatureSpec
) -> None:
    train, hold = credit_split
    enc = TabularEncoder(credit_spec).fit(train)
    records = hold[credit_spec.feature_names].head(50).to_dict(orient="records")
    a = enc.transform(hold.head(50))
    b = enc.transform(features_from_records(records, credit_spec))
    np.testing.assert_array_equal(a.numeric, b.numeric)
    np.testing.assert_array_equal(a.categorical, b.categorical)


def test_boolean_and_constant_policies() -> None:
    spec = spec_from_mapping(
        {
            "name": "b",
            "entity_key": {"column": "id"},
            "label": {"column": "y", "positive": 1},
            "columns": [
                {
                    "name": "f",
                    "type": "boolean",
                    "missing": {"strategy": "constant", "fill_value": True},
                },
                {
                    "name": "x",
                    "type": "numeric",
                    "missing": {"strategy": "constant", "fill_value": -1},
                },
                {"name": "c", "type": "categorical", "missing": {"strategy": "most_frequent"}},
            ],
        }
    )
    train = pd.DataFrame(
        {"f": ["yes", "no", "no", "no"], "x": [1.0, 2.0, 3.0, 4.0], "c": ["a", "a", "b", None]}
    )
    enc = TabularEncoder(spec).fit(train)
    assert enc.state["f"]["mean"] == pytest.approx(0.25)  # 1 of 4 true ("yes")
    out = enc.transform(
        pd.DataFrame({"f": [None, True, 0], "x": [None, 1.0, 2.0], "c": [None, "b", "zzz"]})
    )
    f_std = enc.state["f"]["std"]
    np.testing.assert_allclose(out.numeric[:, 0], np.array([0.75, 0.75, -0.25]) / f_std, 1e-6)
    x_st = enc.state["x"]
    assert out.numeric[0, 1] == pytest.approx((-1 - x_st["mean"]) / x_st["std"])
    assert [enc.vocabulary("c")[i] for i in out.categorical[:, 0]] == ["a", "b", "<unk>"]


def test_encoder_misuse_errors(credit_spec: FeatureSpec, credit_df: pd.DataFrame) -> None:
    with pytest.raises(EncoderError, match="not fitted"):
        TabularEncoder(credit_spec).transform(credit_df)
    enc = TabularEncoder(credit_spec).fit(credit_df)
    with pytest.raises(EncoderError, match=r"lacks feature column\(s\) \['Age'\]"):
        enc.transform(credit_df.drop(columns=["Age"]))
    with pytest.raises(EncoderError, match="malformed"):
        TabularEncoder.from_json("{not json")
