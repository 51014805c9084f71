"""TabularEncoder: spec-driven, vectorised feature encoding shared by training and serving.

Fitted on training rows only. Numeric columns may first be transformed (``transform: log1p``,
a signed log1p for skewed amounts). Numeric and boolean columns are imputed per their missing-value
policy, optionally get a missing-indicator column, and every numeric-matrix column is
standardised with the training mean/std (so 0 is the training average, the baseline used for
contributions). Categorical columns get a vocabulary: index 0 is ``<missing>``, 1 is ``<unk>``
(a category never seen in training), then the training categories by frequency. Torch models
embed the indices; scikit-learn models use :meth:`TabularEncoder.one_hot`.

A boolean column maps its ``true_values`` / ``false_values`` (case-insensitive) to 1 / 0; any
other value would become missing. ``fit`` refuses training rows holding such values
(:class:`~models.data.DataError` naming them); ``transform`` (serving) treats them as missing.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from models.data import DataError, Issue, values_text
from models.spec import ColumnSpec, FeatureSpec, spec_from_mapping

__all__ = [
    "MISSING_TOKEN",
    "UNKNOWN_TOKEN",
    "EncodedBatch",
    "EncoderError",
    "TabularEncoder",
    "boolean_issue",
    "unlisted_boolean_values",
]

MISSING_TOKEN = "<missing>"
UNKNOWN_TOKEN = "<unk>"
_FORMAT = "decisionflow.tabular_encoder"
_FORMAT_VERSION = 1

Float32Array = npt.NDArray[np.float32]
Int64Array = npt.NDArray[np.int64]


class EncoderError(ValueError):
    """Encoder misuse: not fitted, a column absent from the frame, a malformed JSON state."""


@dataclass(frozen=True)
class EncodedBatch:
    """The encoded form of a batch of rows.

    ``numeric`` is (n_rows, n_numeric) float32, ``categorical`` is (n_rows, n_categorical) int64
    vocabulary indices. ``numeric_groups[j]`` / ``categorical_groups[j]`` give the index (into
    ``feature_names``, the raw spec features) that matrix column j comes from.
    """

    numeric: Float32Array
    categorical: Int64Array
    numeric_names: tuple[str, ...]
    categorical_names: tuple[str, ...]
    numeric_groups: Int64Array
    categorical_groups: Int64Array
    feature_names: tuple[str, ...]

    @property
    def n_rows(self) -> int:
        """Number of rows in the batch."""
        return int(self.numeric.shape[0])

    @property
    def n_features(self) -> int:
        """Number of raw spec features (the width of a contributions matrix)."""
        return len(self.feature_names)

    def take(self, rows: npt.NDArray[np.int64] | slice) -> EncodedBatch:
        """A batch with only the given rows (same columns)."""
        return EncodedBatch(
            numeric=self.numeric[rows],
            categorical=self.categorical[rows],
            numeric_names=self.numeric_names,
            categorical_names=self.categorical_names,
            numeric_groups=self.numeric_groups,
            categorical_groups=self.categorical_groups,
            feature_names=self.feature_names,
        )


# Exact types whose ``str(v)`` is what pandas' ``astype(str)`` gives (others: bytes, numpy
# scalars, dates... take pandas' own conversion).
_PLAIN_TYPES = frozenset({str, int, float, bool})


def _plain_numeric(series: pd.Series) -> bool:
    """A numpy bool/int/float column: no NA markers, ``pd.to_numeric`` leaves it unchanged."""
    return isinstance(series.dtype, np.dtype) and series.dtype.kind in "biuf"


def _float_values(series: pd.Series) -> npt.NDArray[np.float64]:
    """A new float64 array of a numeric column (NaN where missing)."""
    if _plain_numeric(series):  # skips pandas' slow na_value path
        return np.array(series.to_numpy(), dtype=np.float64)
    return np.array(series.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)


def _number_strings(
    floats: npt.NDArray[np.float64], isna: npt.NDArray[np.bool_]
) -> list[str | None]:
    """Category keys of a numeric column: "1" for 1 and 1.0 when all are whole, else "1.5"."""
    finite = np.where(isna, 0.0, floats)
    if np.all(np.mod(finite, 1.0) == 0):
        strings = finite.astype(np.int64).astype(str).tolist()
    else:
        strings = finite.astype(str).tolist()
    return [None if m else s for s, m in zip(strings, isna.tolist(), strict=True)]


def _category_strings(series: pd.Series) -> list[str | None]:
    """Normalise values to strings (None where missing): 1, 1.0 and "1" all become "1".

    Same result as pandas' ``isna`` / ``astype(str)``, without its per-column overhead.
    """
    if pd.api.types.is_bool_dtype(series):
        values = series.to_numpy(dtype=object)
        missing = pd.isna(values).tolist()
        return [
            None if m else ("true" if v else "false") for v, m in zip(values, missing, strict=True)
        ]
    if pd.api.types.is_numeric_dtype(series):
        floats = _float_values(series)
        isna = np.isnan(floats) if _plain_numeric(series) else series.isna().to_numpy()
        return _number_strings(floats, isna)
    if isinstance(series.dtype, pd.StringDtype):  # strings already; nulls are the missing
        keys: list[str | None] = pa.array(series.array).to_pylist()
        return keys
    values = series.to_numpy(dtype=object)
    missing = pd.isna(values).tolist()
    if not all(m or type(v) in _PLAIN_TYPES for v, m in zip(values, missing, strict=True)):
        values = series.astype(object).astype(str).to_numpy(dtype=object)
    return [None if m else str(v) for v, m in zip(values, missing, strict=True)]


def _lower(strings: list[str]) -> list[str]:
    """``str.lower`` as pandas' string dtype does it (pyarrow differs from Python on "İ", "Σ")."""
    if all(s.isascii() for s in strings):
        return [s.lower() for s in strings]
    return [str(s) for s in pd.Series(strings, dtype=str).str.lower().tolist()]


def _numeric_values(series: pd.Series, col: ColumnSpec) -> npt.NDArray[np.float64]:
    numbers = series if _plain_numeric(series) else pd.to_numeric(series, errors="coerce")
    return _finish_numeric(_float_values(numbers), col)


def _finish_numeric(values: npt.NDArray[np.float64], col: ColumnSpec) -> npt.NDArray[np.float64]:
    """Non-finite -> NaN (in place), then the column's transform."""
    values[~np.isfinite(values)] = np.nan
    if col.transform == "log1p":  # signed log1p: monotone, defined for negatives too
        values = np.asarray(np.sign(values) * np.log1p(np.abs(values)), dtype=np.float64)
    return values


def _bool_mapping(col: ColumnSpec) -> dict[str, float]:
    mapping = {v.lower(): 1.0 for v in col.true_values}
    mapping.update({v.lower(): 0.0 for v in col.false_values})
    return mapping


def _boolean_values(series: pd.Series, col: ColumnSpec) -> npt.NDArray[np.float64]:
    mapping = _bool_mapping(col)
    keys = _category_strings(series)
    distinct = list({k for k in keys if k is not None})
    lowered = dict(zip(distinct, _lower(distinct), strict=True))
    mapped = [math.nan if k is None else mapping.get(lowered[k], math.nan) for k in keys]
    return np.array(mapped, dtype=np.float64)


def unlisted_boolean_values(series: pd.Series, col: ColumnSpec) -> Counter[str]:
    """Counts of the non-missing values of a boolean column that are in neither
    ``true_values`` nor ``false_values`` (case-insensitive, as the encoder compares them)."""
    mapping = _bool_mapping(col)
    counts = Counter(k for k in _category_strings(series) if k is not None)
    distinct = list(counts)
    return Counter(
        {
            k: counts[k]
            for k, low in zip(distinct, _lower(distinct), strict=True)
            if low not in mapping
        }
    )


def boolean_issue(series: pd.Series, col: ColumnSpec) -> Issue | None:
    """The problem of a boolean column holding values it does not list, or None."""
    unlisted = unlisted_boolean_values(series, col)
    if not unlisted:
        return None
    return Issue(
        f"boolean column {col.name!r} holds values outside its true_values / false_values "
        "(they would become missing)",
        values_text(unlisted),
        f"add them to true_values {list(col.true_values)} or false_values "
        f"{list(col.false_values)}, or declare the column type: categorical",
    )


def _fill_value(values: npt.NDArray[np.float64], col: ColumnSpec) -> float:
    observed = values[~np.isnan(values)]
    strategy = col.resolved_strategy
    if strategy == "constant":
        fill = col.missing.fill_value
        if isinstance(fill, str) and col.type == "boolean":
            return 1.0 if fill.lower() in {v.lower() for v in col.true_values} else 0.0
        return float(fill)  # type: ignore[arg-type]
    if observed.size == 0:
        return 0.0
    if strategy == "mean":
        return float(observed.mean())
    if strategy == "median":
        return float(np.median(observed))
    uniq, counts = np.unique(observed, return_counts=True)
    return float(uniq[np.argmax(counts)])  # most_frequent: ties -> smallest value


def _moments(values: npt.NDArray[np.float64]) -> tuple[float, float]:
    mean = float(values.mean()) if values.size else 0.0
    std = float(values.std()) if values.size else 1.0
    return mean, (std if std > 1e-12 else 1.0)


_NONE_TYPE = type(None)
# The value types of validated events per column type (decisioning.validation); lists holding
# only these take the numpy/dict paths of ``transform_columns``.
_EVENT_TYPES: dict[str, frozenset[type]] = {
    "numeric": frozenset({int, float}),
    "boolean": frozenset({bool, str}),
    "categorical": frozenset({str, int}),
}


@dataclass(frozen=True, slots=True)
class _Parsed:
    """One column before imputation: ``raw`` floats (numeric/boolean) or category ``codes``."""

    raw: npt.NDArray[np.float64] | None = None
    codes: npt.NDArray[np.int64] | None = None
    missing: npt.NDArray[np.bool_] | None = None
    """Categorical rows that were missing (None when no indicator needs it)."""


def _list_floats(values: Sequence[Any], has_ints: bool) -> npt.NDArray[np.float64] | None:
    """float64 of ints/floats (None -> NaN); None when an int may not fit int64 (pandas path)."""
    try:
        floats = np.array(values, dtype=np.float64)
    except OverflowError:  # an int beyond float64
        return None
    if has_ints and bool((np.abs(floats) >= 2.0**63).any()):
        return None
    return floats


def _list_booleans(values: Sequence[Any], col: ColumnSpec) -> npt.NDArray[np.float64]:
    """1.0 / 0.0 / NaN of bools and strings, as ``_boolean_values`` maps them."""
    mapping = _bool_mapping(col)
    distinct = [v for v in set(values) if v is not None]
    keys = [("true" if v else "false") if type(v) is bool else v for v in distinct]
    table: dict[Any, float] = {
        v: mapping.get(low, math.nan) for v, low in zip(distinct, _lower(keys), strict=True)
    }
    table[None] = math.nan
    return np.fromiter(map(table.__getitem__, values), dtype=np.float64, count=len(values))


def _series_of(values: Sequence[Any], name: str) -> pd.Series:
    """The column as ``features_from_records`` builds it (pandas' own type inference)."""
    return pd.DataFrame.from_records([{name: v} for v in values], columns=[name])[name]


class TabularEncoder:
    """Spec-driven encoder; fit on training rows only, then transform any batch."""

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self.state: dict[str, dict[str, Any]] = {}
        self._fitted = False

    # ------------------------------------------------------------------ fitting
    def fit(self, df: pd.DataFrame, *, check_booleans: bool = True) -> TabularEncoder:
        """Learn imputation values, standardisation and vocabularies from ``df`` (train rows).

        Raises :class:`~models.data.DataError` when a boolean column holds a value outside its
        ``true_values`` / ``false_values`` (it would silently become missing), unless
        ``check_booleans`` is false.
        """
        self._check_columns(df)
        state: dict[str, dict[str, Any]] = {}
        for col in self.spec.columns:
            series = df[col.name]
            if check_booleans and col.type == "boolean":
                issue = boolean_issue(series, col)
                if issue is not None:
                    raise DataError(issue.sentence())
            if col.type == "categorical":
                state[col.name] = self._fit_categorical(series, col)
            else:
                raw = (
                    _numeric_values(series, col)
                    if col.type == "numeric"
                    else _boolean_values(series, col)
                )
                isnan = np.isnan(raw)
                fill = _fill_value(raw, col)
                mean, std = _moments(np.where(isnan, fill, raw))
                entry: dict[str, Any] = {"type": col.type, "fill": fill, "mean": mean, "std": std}
                if col.missing.indicator:
                    entry["ind_mean"], entry["ind_std"] = _moments(isnan.astype(np.float64))
                state[col.name] = entry
        self.state = state
        self._fitted = True
        return self

    @staticmethod
    def _fit_categorical(series: pd.Series, col: ColumnSpec) -> dict[str, Any]:
        keys = _category_strings(series)
        counts = Counter(k for k in keys if k is not None)
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        vocab = [k for k, _ in ranked[: col.max_categories]]
        strategy = col.resolved_strategy
        fill_index = 0
        if strategy == "most_frequent" and vocab:
            fill_index = 2
        elif strategy == "constant":
            fill = str(col.missing.fill_value)
            fill_index = vocab.index(fill) + 2 if fill in vocab else 1
        entry: dict[str, Any] = {"type": "categorical", "vocab": vocab, "fill_index": fill_index}
        entry["baseline_index"] = 2 if vocab else fill_index
        if col.missing.indicator:
            missing = np.array([k is None for k in keys], dtype=np.float64)
            entry["ind_mean"], entry["ind_std"] = _moments(missing)
        return entry

    # ---------------------------------------------------------------- transform
    def _check_columns(self, df: pd.DataFrame) -> None:
        absent = [c for c in self.spec.feature_names if c not in df.columns]
        if absent:
            raise EncoderError(f"frame lacks feature column(s) {absent}")

    def _require_fitted(self) -> None:
        if not self._fitted:
            raise EncoderError("TabularEncoder is not fitted: call fit(train_df) first")

    def transform(self, df: pd.DataFrame) -> EncodedBatch:
        """Encode a frame. Unknown categories map to ``<unk>``, never raise.

        Works column by column on numpy arrays and dict lookups: cheap for small online batches.
        """
        self._require_fitted()
        self._check_columns(df)
        parsed = [self._parse_series(df[col.name], col) for col in self.spec.columns]
        return self._encode(len(df), parsed)

    def transform_columns(self, features: Mapping[str, Sequence[Any]], n_rows: int) -> EncodedBatch:
        """Encode per-feature value lists (row i of every list is one event), without pandas.

        ``features`` maps spec feature names to ``n_rows`` raw values each (None: missing; an
        absent name: missing in every row). The result equals, bit for bit,
        ``transform(features_from_records(records, spec))`` for the same rows: event values
        (numbers, strings, booleans, ints for categories) take numpy/dict fast paths, any other
        value type the pandas conversion of a one-column frame.
        """
        self._require_fitted()
        parsed: list[_Parsed] = []
        for col in self.spec.columns:
            values = features.get(col.name)
            if values is None:
                values = [None] * n_rows
            elif len(values) != n_rows:
                raise EncoderError(
                    f"feature {col.name!r} has {len(values)} values for {n_rows} rows"
                )
            parsed.append(self._parse_list(values, col))
        return self._encode(n_rows, parsed)

    def _lookup(self, name: str) -> dict[str, int]:
        return {token: i for i, token in enumerate(self.state[name]["vocab"], start=2)}

    def _codes(self, keys: list[str | None], col: ColumnSpec) -> _Parsed:
        lookup, fill = self._lookup(col.name), self.state[col.name]["fill_index"]
        codes = np.array([fill if k is None else lookup.get(k, 1) for k in keys], dtype=np.int64)
        return _Parsed(codes=codes, missing=np.array([k is None for k in keys], dtype=bool))

    def _parse_series(self, series: pd.Series, col: ColumnSpec) -> _Parsed:
        if col.type == "categorical":
            return self._codes(_category_strings(series), col)
        if col.type == "numeric":
            return _Parsed(raw=_numeric_values(series, col))
        return _Parsed(raw=_boolean_values(series, col))

    def _parse_list(self, values: Sequence[Any], col: ColumnSpec) -> _Parsed:
        types = set(map(type, values))
        types.discard(_NONE_TYPE)
        parsed: _Parsed | None = None
        if types <= _EVENT_TYPES[col.type]:
            if col.type == "numeric":
                floats = _list_floats(values, int in types)
                parsed = None if floats is None else _Parsed(raw=_finish_numeric(floats, col))
            elif col.type == "boolean":
                parsed = _Parsed(raw=_list_booleans(values, col))
            elif types == {int}:  # a numeric column to pandas: keys "1", "2", ...
                floats = _list_floats(values, True)
                if floats is not None:
                    parsed = self._codes(_number_strings(floats, np.isnan(floats)), col)
            else:
                parsed = self._list_codes(values, col)
        if parsed is None:  # an unusual value type: the pandas conversion decides
            parsed = self._parse_series(_series_of(values, col.name), col)
        return parsed

    def _list_codes(self, values: Sequence[Any], col: ColumnSpec) -> _Parsed:
        """Codes of strings (and ints mixed with strings: ``str(v)``, as an object column)."""
        lookup, fill = self._lookup(col.name), self.state[col.name]["fill_index"]
        table: dict[Any, int] = {
            v: lookup.get(v if type(v) is str else str(v), 1) for v in set(values)
        }
        table[None] = fill
        codes = np.fromiter(map(table.__getitem__, values), dtype=np.int64, count=len(values))
        missing = None
        if col.missing.indicator:
            missing = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
        return _Parsed(codes=codes, missing=missing)

    def _encode(self, n: int, parsed: Sequence[_Parsed]) -> EncodedBatch:
        """Impute, standardise and add indicators: the arithmetic shared by both transforms."""
        numeric = np.empty((n, len(self.numeric_names)), dtype=np.float32)
        categorical = np.empty((n, len(self.categorical_names)), dtype=np.int64)
        j_num = j_cat = 0
        for col, part in zip(self.spec.columns, parsed, strict=True):
            st = self.state[col.name]
            if part.codes is not None:
                categorical[:, j_cat] = part.codes
                isnan = part.missing
                j_cat += 1
            else:
                assert part.raw is not None
                isnan = np.isnan(part.raw)
                # computed in float64, rounded to float32 on assignment
                filled = np.where(isnan, st["fill"], part.raw)
                numeric[:, j_num] = (filled - st["mean"]) / st["std"]
                j_num += 1
            if col.missing.indicator:
                assert isnan is not None
                numeric[:, j_num] = (isnan.astype(np.float64) - st["ind_mean"]) / st["ind_std"]
                j_num += 1
        return EncodedBatch(
            numeric=numeric,
            categorical=categorical,
            numeric_names=self.numeric_names,
            categorical_names=self.categorical_names,
            numeric_groups=self.numeric_groups,
            categorical_groups=self.categorical_groups,
            feature_names=tuple(self.spec.feature_names),
        )

    def fit_transform(self, df: pd.DataFrame) -> EncodedBatch:
        """``fit(df)`` then ``transform(df)``."""
        return self.fit(df).transform(df)

    # ------------------------------------------------------------- layout info
    def _numeric_layout(self) -> list[tuple[str, int]]:
        layout: list[tuple[str, int]] = []
        for i, col in enumerate(self.spec.columns):
            if col.type != "categorical":
                layout.append((col.name, i))
            if col.missing.indicator:
                layout.append((f"{col.name}__missing", i))
        return layout

    @property
    def numeric_names(self) -> tuple[str, ...]:
        """Names of the numeric-matrix columns (``<col>__missing`` for indicators)."""
        return tuple(name for name, _ in self._numeric_layout())

    @property
    def numeric_groups(self) -> Int64Array:
        """Raw-feature index of each numeric-matrix column."""
        return np.array([g for _, g in self._numeric_layout()], dtype=np.int64)

    @property
    def categorical_names(self) -> tuple[str, ...]:
        """Names of the categorical-matrix columns (the categorical spec columns)."""
        return tuple(c.name for c in self.spec.columns if c.type == "categorical")

    @property
    def categorical_groups(self) -> Int64Array:
        """Raw-feature index of each categorical-matrix column."""
        return np.array(
            [i for i, c in enumerate(self.spec.columns) if c.type == "categorical"],
            dtype=np.int64,
        )

    @property
    def cardinalities(self) -> list[int]:
        """Embedding table size of each categorical column (vocab + ``<missing>``, ``<unk>``)."""
        self._require_fitted()
        return [len(self.state[n]["vocab"]) + 2 for n in self.categorical_names]

    def vocabulary(self, column: str) -> list[str]:
        """Full index-ordered vocabulary of a categorical column, tokens included."""
        self._require_fitted()
        return [MISSING_TOKEN, UNKNOWN_TOKEN, *self.state[column]["vocab"]]

    @property
    def baseline_categories(self) -> Int64Array:
        """Per categorical column, the index used as its baseline (the training mode)."""
        self._require_fitted()
        return np.array(
            [self.state[n]["baseline_index"] for n in self.categorical_names], dtype=np.int64
        )

    # ------------------------------------------------------------------ one-hot
    @property
    def one_hot_names(self) -> tuple[str, ...]:
        """Names of the one-hot columns, ``<col>=<category>``."""
        return tuple(
            f"{name}={token}" for name in self.categorical_names for token in self.vocabulary(name)
        )

    @property
    def one_hot_groups(self) -> Int64Array:
        """Raw-feature index of each one-hot column."""
        groups = [
            [int(g)] * card
            for g, card in zip(self.categorical_groups, self.cardinalities, strict=True)
        ]
        return np.array([g for block in groups for g in block], dtype=np.int64)

    def one_hot(self, batch: EncodedBatch) -> Float32Array:
        """Dense one-hot float32 matrix of the categorical indices (vectorised)."""
        cards = self.cardinalities
        offsets = np.concatenate([[0], np.cumsum(cards)[:-1]]).astype(np.int64)
        out = np.zeros((batch.n_rows, int(sum(cards))), dtype=np.float32)
        if cards:
            rows = np.repeat(np.arange(batch.n_rows), len(cards))
            cols = (batch.categorical + offsets[None, :]).ravel()
            out[rows, cols] = 1.0
        return out

    def design_matrix(self, batch: EncodedBatch) -> tuple[Float32Array, Int64Array]:
        """``[numeric | one-hot]`` float32 matrix and the raw-feature index of each column."""
        matrix = np.hstack([batch.numeric, self.one_hot(batch)]).astype(np.float32)
        groups = np.concatenate([batch.numeric_groups, self.one_hot_groups]).astype(np.int64)
        return matrix, groups

    # -------------------------------------------------------------- persistence
    def to_json(self) -> str:
        """Serialise the fitted state (with the spec it was fitted for) as JSON text."""
        self._require_fitted()
        payload = {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "spec_hash": self.spec.hash,
            "spec": self.spec.to_dict(),
            "state": self.state,
        }
        return json.dumps(payload, sort_keys=True, indent=1)

    @classmethod
    def from_json(cls, text: str, spec: FeatureSpec | None = None) -> TabularEncoder:
        """Rebuild a fitted encoder; if ``spec`` is given its hash must match the saved one."""
        try:
            payload = json.loads(text)
            if payload.get("format") != _FORMAT:
                raise EncoderError(f"not a {_FORMAT} document")
            saved_spec = spec_from_mapping(payload["spec"], "encoder.json")
            state = payload["state"]
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise EncoderError(f"malformed encoder JSON: {exc}") from None
        if spec is not None and spec.hash != saved_spec.hash:
            raise EncoderError(
                f"encoder was fitted for spec {saved_spec.hash[:12]}, not {spec.hash[:12]}"
            )
        missing = [c for c in saved_spec.feature_names if c not in state]
        if missing:
            raise EncoderError(f"malformed encoder JSON: no state for column(s) {missing}")
        enc = cls(spec or saved_spec)
        for entry in state.values():
            for key in ("fill", "mean", "std", "ind_mean", "ind_std"):
                if key in entry and not math.isfinite(float(entry[key])):
                    raise EncoderError(f"malformed encoder JSON: non-finite {key}")
        enc.state = state
        enc._fitted = True
        return enc
