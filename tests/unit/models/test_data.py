"""Loading per spec, labels, splits, fingerprints and record batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.data import (
    DataError,
    data_fingerprint,
    features_from_records,
    holdout_split,
    labels,
    load_frame,
    stratified_kfold,
)
from models.spec import FeatureSpec


def test_credit_table_loads_from_package(credit_df: pd.DataFrame, credit_spec: FeatureSpec) -> None:
    assert credit_df.shape == (4454, 15)
    assert list(credit_df.columns) == [
        "application_id",
        *credit_spec.feature_names,
        "Status",
    ]
    assert credit_df["application_id"].iloc[123] == "app-000123"
    assert credit_df["application_id"].is_unique
    y = labels(credit_df, credit_spec)
    assert y.dtype == np.int64
    assert int(y.sum()) == 1254  # Status == "bad" is the positive class


def test_holdout_split_is_stratified_seeded_disjoint(
    credit_df: pd.DataFrame, credit_spec: FeatureSpec
) -> None:
    train, hold = holdout_split(credit_df, credit_spec, 0.2, seed=7)
    again, _ = holdout_split(credit_df, credit_spec, 0.2, seed=7)
    other, _ = holdout_split(credit_df, credit_spec, 0.2, seed=8)
    assert len(hold) == 891 and len(train) == 4454 - 891
    assert set(train.application_id).isdisjoint(hold.application_id)
    assert train.application_id.tolist() == again.application_id.tolist()
    assert train.application_id.tolist() != other.application_id.tolist()
    rate = labels(credit_df, credit_spec).mean()
    assert abs(labels(hold, credit_spec).mean() - rate) < 0.005


def test_kfold_covers_every_row_once(credit_df: pd.DataFrame, credit_spec: FeatureSpec) -> None:
    folds = stratified_kfold(credit_df, credit_spec, n_splits=4, seed=0)
    seen = pd.concat([valid.application_id for _, valid in folds])
    assert len(folds) == 4
    assert sorted(seen) == sorted(credit_df.application_id)


def test_fingerprint_stable_and_sensitive(credit_df: pd.DataFrame) -> None:
    fp = data_fingerprint(credit_df)
    assert fp == data_fingerprint(credit_df.copy())
    assert fp == data_fingerprint(credit_df.set_index(credit_df.index + 5))
    changed = credit_df.copy()
    changed.loc[10, "Income"] = 1.0 + (changed.loc[10, "Income"] or 0)
    assert data_fingerprint(changed) != fp


def test_csv_and_parquet_sources(
    tmp_path: Path, credit_df: pd.DataFrame, credit_spec: FeatureSpec
) -> None:
    small = credit_df.head(50).drop(columns=["application_id"])
    small.to_csv(tmp_path / "t.csv", index=False)
    small.to_parquet(tmp_path / "t.parquet", index=False)
    for src in (tmp_path / "t.csv", f"parquet:{tmp_path / 't.parquet'}"):
        frame = load_frame(credit_spec, src)
        assert frame.shape == (50, 15)
        assert frame.application_id.iloc[0] == "app-000000"
    with pytest.raises(DataError, match="lacks feature column"):
        small.drop(columns=["Age"]).to_csv(tmp_path / "bad.csv", index=False)
        load_frame(credit_spec, tmp_path / "bad.csv")
    with pytest.raises(DataError, match="not found"):
        load_frame(credit_spec, tmp_path / "missing.csv")
    with pytest.raises(DataError, match="cannot tell the format"):
        load_frame(credit_spec, tmp_path / "t.txt")


def test_label_errors(credit_df: pd.DataFrame, credit_spec: FeatureSpec) -> None:
    with pytest.raises(DataError, match="label column 'Status' is not in the frame"):
        labels(credit_df.drop(columns=["Status"]), credit_spec)
    bad = credit_df.head(5).copy()
    bad.loc[0, "Status"] = None
    with pytest.raises(DataError, match="missing value"):
        labels(bad, credit_spec)


def test_features_from_records(credit_spec: FeatureSpec) -> None:
    records = [
        {"Income": 100.0, "Home": "rent", "unexpected": 1, "application_id": "a-1"},
        {"Age": 40},
        {},
    ]
    frame = features_from_records(records, credit_spec)
    assert list(frame.columns) == credit_spec.feature_names
    assert len(frame) == 3
    assert frame.loc[0, "Home"] == "rent"
    assert np.isnan(frame.loc[1, "Income"])
    assert frame.loc[1, "Age"] == 40
    keyed = features_from_records(records, credit_spec, include_key=True)
    assert keyed.columns[0] == "application_id"
    assert list(features_from_records([], credit_spec).columns) == credit_spec.feature_names
