"""The fast TabularEncoder equals a frozen copy of the original pandas implementation, bit for bit.

The ``_ref_*`` functions are the encoder as it was before the numpy / plain-Python rewrite
(per-column pandas: ``astype(str)``, ``pd.Categorical``, ``str.lower().map``). Random frames with
mixed dtypes are fitted and transformed by both; fitted state and encoded matrices must be
identical.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.encoding import TabularEncoder, _fill_value, _moments
from models.spec import ColumnSpec, FeatureSpec, spec_from_mapping


# --------------------------------------------------------------- frozen reference (do not edit)
def _ref_category_strings(series: pd.Series) -> pd.Series:
    missing = series.isna().to_numpy()
    if pd.api.types.is_bool_dtype(series):
        out = series.astype(object).map({True: "true", False: "false"})
    elif pd.api.types.is_numeric_dtype(series):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        finite = np.where(missing, 0.0, values)
        if np.all(np.mod(finite, 1.0) == 0):
            strings = finite.astype(np.int64).astype(str).astype(object)
        else:
            strings = finite.astype(str).astype(object)
        out = pd.Series(strings, index=series.index, dtype=object)
    else:
        out = series.astype(object).astype(str)
    return out.where(~missing, other=np.nan)


def _ref_numeric_values(series: pd.Series, col: ColumnSpec) -> npt.NDArray[np.float64]:
    values = np.array(
        pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan),
        dtype=np.float64,
        copy=True,
    )
    values[~np.isfinite(values)] = np.nan
    if col.transform == "log1p":
        values = np.asarray(np.sign(values) * np.log1p(np.abs(values)), dtype=np.float64)
    return values


def _ref_boolean_values(series: pd.Series, col: ColumnSpec) -> npt.NDArray[np.float64]:
    mapping = {v.lower(): 1.0 for v in col.true_values}
    mapping.update({v.lower(): 0.0 for v in col.false_values})
    mapped = _ref_category_strings(series).str.lower().map(mapping)
    return np.asarray(mapped.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)


def _ref_fit(spec: FeatureSpec, df: pd.DataFrame) -> dict[str, dict[str, Any]]:
    state: dict[str, dict[str, Any]] = {}
    for col in spec.columns:
        series = df[col.name]
        entry: dict[str, Any]
        if col.type == "categorical":
            strings = _ref_category_strings(series)
            counts = strings.dropna().value_counts()
            ranked = sorted(counts.items(), key=lambda kv: (-int(kv[1]), str(kv[0])))
            vocab = [str(k) for k, _ in ranked[: col.max_categories]]
            fill_index = 0
            if col.resolved_strategy == "most_frequent" and vocab:
                fill_index = 2
            elif col.resolved_strategy == "constant":
                fill = str(col.missing.fill_value)
                fill_index = vocab.index(fill) + 2 if fill in vocab else 1
            entry = {"type": "categorical", "vocab": vocab, "fill_index": fill_index}
            entry["baseline_index"] = 2 if vocab else fill_index
            isnan = strings.isna().to_numpy()
        else:
            values = _ref_numeric_values if col.type == "numeric" else _ref_boolean_values
            raw = values(series, col)
            isnan = np.isnan(raw)
            fill = _fill_value(raw, col)
            mean, std = _moments(np.where(isnan, fill, raw))
            entry = {"type": col.type, "fill": fill, "mean": mean, "std": std}
        if col.missing.indicator:
            entry["ind_mean"], entry["ind_std"] = _moments(isnan.astype(np.float64))
        state[col.name] = entry
    return state


def _ref_transform(
    spec: FeatureSpec, state: dict[str, dict[str, Any]], df: pd.DataFrame
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    n = len(df)
    num_cols: list[npt.NDArray[np.float64]] = []
    cat_cols: list[npt.NDArray[np.int64]] = []
    for col in spec.columns:
        st_ = state[col.name]
        series = df[col.name]
        if col.type == "categorical":
            strings = _ref_category_strings(series)
            isnan = strings.isna().to_numpy()
            codes = pd.Categorical(strings, categories=st_["vocab"]).codes.astype(np.int64)
            idx = np.where(codes < 0, 1, codes + 2)
            cat_cols.append(np.where(isnan, st_["fill_index"], idx).astype(np.int64))
        else:
            values = _ref_numeric_values if col.type == "numeric" else _ref_boolean_values
            raw = values(series, col)
            isnan = np.isnan(raw)
            filled = np.where(isnan, st_["fill"], raw)
            num_cols.append((filled - st_["mean"]) / st_["std"])
        if col.missing.indicator:
            num_cols.append((isnan.astype(np.float64) - st_["ind_mean"]) / st_["ind_std"])
    numeric = (
        np.column_stack(num_cols).astype(np.float32)
        if num_cols
        else np.zeros((n, 0), dtype=np.float32)
    )
    categorical = (
        np.column_stack(cat_cols).astype(np.int64) if cat_cols else np.zeros((n, 0), dtype=np.int64)
    )
    return numeric, categorical


# ------------------------------------------------------------------------------ comparison
def assert_same_as_reference(
    spec: FeatureSpec, train: pd.DataFrame, frames: list[pd.DataFrame]
) -> None:
    """Fit both on ``train``; the state and every frame's encoding must match exactly."""
    enc = TabularEncoder(spec).fit(train, check_booleans=False)  # junk booleans on purpose
    state = _ref_fit(spec, train)
    assert json.dumps(enc.state, sort_keys=True) == json.dumps(state, sort_keys=True)
    for frame in [train, *frames]:
        before = frame.copy()
        out = enc.transform(frame)
        numeric, categorical = _ref_transform(spec, state, frame)
        assert out.numeric.dtype == np.float32 and out.categorical.dtype == np.int64
        assert out.numeric.shape == numeric.shape and out.categorical.shape == categorical.shape
        np.testing.assert_array_equal(out.numeric.view(np.uint32), numeric.view(np.uint32))
        np.testing.assert_array_equal(out.categorical, categorical)
        pd.testing.assert_frame_equal(frame, before)  # the input is never modified


# ------------------------------------------------------------------------------ strategies
# Values that take distinct paths: missing markers, bool/int/float/str spellings of one number,
# case and non-ASCII lowering ("İ" and final "Σ" lower differently in pyarrow and Python), and
# objects pandas converts its own way (bytes are decoded, numpy scalars, Decimal, Timestamp).
CORNERS: list[Any] = [
    *[None, np.nan, pd.NA, True, False, 0, 1, -1, 1.0, 1.5, -0.0, 1e20, 2.0**63, 10**30],
    *[np.inf, -np.inf, "a", "A", "1", "1.0", "01", " 7 ", "1e3", "-2", "yes", "YES", "No"],
    *["true", "False", "t", "maybe", "nan", "inf", "", "İ", "i", "ΑΣ", "ας", "σ", "ß", "SS"],  # noqa: RUF001
]
ODDS: list[Any] = [np.float64(2.0), np.int64(3), np.bool_(True), np.float32(0.5), b"a", b"1"]
ODDS += [Decimal("1.0"), pd.Timestamp("2020-01-01")]
CORNERS += ODDS
_TEXT = st.sampled_from([v for v in CORNERS if isinstance(v, str)]) | st.text(max_size=3)
_OBJECT = st.sampled_from(CORNERS) | st.integers() | st.floats() | _TEXT
_NUMBER = st.sampled_from([0, 1, 2, -1, 1.0, 2.0, 1.5, -0.0, 1e20, 2.0**63, float("inf")])
_KINDS = ["object", "float", "int", "bool", "Int64", "boolean", "category"]
_KINDS += ["str", "string", "string[python]", "string[pyarrow]"]


@st.composite
def columns(draw: st.DrawFn, n: int) -> pd.Series:
    """One column of ``n`` values in a random representation."""
    kind = draw(st.sampled_from(_KINDS))
    if kind == "object":
        return pd.Series(draw(st.lists(_OBJECT, min_size=n, max_size=n)), dtype=object)
    if kind == "float":
        values = st.none() | _NUMBER | st.floats(allow_nan=True, allow_infinity=True)
        return pd.Series(draw(st.lists(values, min_size=n, max_size=n)), dtype=np.float64)
    if kind == "int":
        ints = st.integers(-5, 5) | st.integers(-(2**62), 2**62)
        return pd.Series(draw(st.lists(ints, min_size=n, max_size=n)), dtype=np.int64)
    if kind == "bool":
        return pd.Series(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    if kind == "Int64":
        values = st.none() | st.integers(-5, 5)
        return pd.Series(draw(st.lists(values, min_size=n, max_size=n)), dtype="Int64")
    if kind == "boolean":
        values = st.none() | st.booleans()
        return pd.Series(draw(st.lists(values, min_size=n, max_size=n)), dtype="boolean")
    values = draw(st.lists(st.none() | _TEXT, min_size=n, max_size=n))
    return pd.Series(values, dtype=kind)


@st.composite
def column_specs(draw: st.DrawFn, name: str) -> dict[str, Any]:
    """A random column spec (every type, strategy and option the encoder reads)."""
    ctype = draw(st.sampled_from(["numeric", "categorical", "boolean"]))
    strategies: dict[str, list[str | None]] = {
        "numeric": [None, "median", "mean", "most_frequent", "constant"],
        "categorical": [None, "category", "most_frequent", "constant"],
        "boolean": [None, "most_frequent", "constant"],
    }
    strategy = draw(st.sampled_from(strategies[ctype]))
    missing: dict[str, Any] = {"strategy": strategy, "indicator": draw(st.booleans())}
    fills: dict[str, list[Any]] = {
        "numeric": [-1, 0.5, "2"],
        "categorical": ["a", "1", "zz", 1],
        "boolean": [True, False, "YES", "no"],
    }
    if strategy == "constant":
        missing["fill_value"] = draw(st.sampled_from(fills[ctype]))
    spec: dict[str, Any] = {"name": name, "type": ctype, "missing": missing}
    if ctype == "numeric":
        spec["transform"] = draw(st.sampled_from(["none", "log1p"]))
    elif ctype == "categorical":
        spec["max_categories"] = draw(st.sampled_from([1, 2, 200]))
    elif draw(st.booleans()):  # custom values, with case and non-ASCII lowering corner cases
        spec["true_values"] = ["Yes", "i", "ας", "1.5"]
        spec["false_values"] = ["NO", "ασ", "ss", "-1"]  # noqa: RUF001
    return spec


@st.composite
def cases(draw: st.DrawFn) -> tuple[FeatureSpec, pd.DataFrame, list[pd.DataFrame]]:
    names = [f"c{i}" for i in range(draw(st.integers(1, 4)))]
    spec = spec_from_mapping(
        {
            "name": "prop",
            "entity_key": {"column": "id"},
            "label": {"column": "y", "positive": 1},
            "columns": [draw(column_specs(name)) for name in names],
        }
    )

    def frame(n: int) -> pd.DataFrame:
        return pd.DataFrame({name: draw(columns(n)) for name in names})

    train = frame(draw(st.integers(0, 12)))
    return spec, train, [frame(draw(st.integers(0, 12))) for _ in range(2)]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # np.mod(inf), int casts of huge floats
@pytest.mark.filterwarnings("ignore:Constructing a Categorical")  # the reference, pandas 3
@settings(max_examples=400, deadline=None)
@given(case=cases())
def test_transform_and_fit_equal_the_reference(
    case: tuple[FeatureSpec, pd.DataFrame, list[pd.DataFrame]],
) -> None:
    spec, train, frames = case
    assert_same_as_reference(spec, train, frames)


CORNER_SPEC = spec_from_mapping(
    {
        "name": "corners",
        "entity_key": {"column": "id"},
        "label": {"column": "y", "positive": 1},
        "columns": [
            {"name": "cat", "type": "categorical", "missing": {"indicator": True}},
            {"name": "cat_few", "type": "categorical", "max_categories": 3},
            {"name": "flag", "type": "boolean", "missing": {"indicator": True}},
            {
                "name": "flag_custom",
                "type": "boolean",
                "true_values": ["Yes", "i", "ας"],
                "false_values": ["NO", "ασ", "ss"],  # noqa: RUF001
                "missing": {"strategy": "constant", "fill_value": "no"},
            },
            {"name": "amount", "type": "numeric", "transform": "log1p"},
            {"name": "age", "type": "numeric", "missing": {"strategy": "mean", "indicator": True}},
        ],
    }
)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.filterwarnings("ignore:Constructing a Categorical")
def test_corner_values_equal_the_reference() -> None:
    """Every corner value in every column type, as objects and in typed columns."""
    names = CORNER_SPEC.feature_names
    mixed = pd.DataFrame({name: pd.Series(CORNERS, dtype=object) for name in names})
    strings = [v for v in CORNERS if isinstance(v, str) or v is None]
    typed = [
        pd.DataFrame({name: pd.Series(values, dtype=dtype) for name in names})
        for values, dtype in [
            ([1.0, np.nan, 2.5, -np.inf, 1.0, 0.0, -0.0, 1e20], np.float64),
            ([1, 2, 7, 0, -1, 2**62], np.int64),
            ([True, False, True], bool),
            ([1, None, 2, 7], "Int64"),
            ([True, None, False], "boolean"),
            (strings, "str"),
            (strings, "string"),
            (strings, "string[python]"),
            (strings, "category"),
        ]
    ]
    # one odd object among plain values, so each odd type alone must leave the fast path
    typed += [
        pd.DataFrame({name: pd.Series(["a", 1, "yes", None, odd], dtype=object) for name in names})
        for odd in ODDS
    ]
    for train in [mixed, *typed]:
        assert_same_as_reference(CORNER_SPEC, train, [mixed, mixed.iloc[::-1], *typed])
