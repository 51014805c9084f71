"""``TabularEncoder.transform_columns`` equals ``transform(features_from_records(...))`` exactly.

Rows are generated per column from the value types events carry (numbers, strings, booleans,
ints for categories, None / absent keys), sometimes one type for a whole column so that pandas
infers a typed column (int64, bool, str), and sometimes values outside the contract (the
pandas fallback).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.data import features_from_records
from models.encoding import EncodedBatch, EncoderError, TabularEncoder
from models.spec import FeatureSpec, available_specs, load_spec, spec_from_mapping

_TEXT = ["yes", "no", "YES", "No", "True", "false", "t", "1", "0", "", "maybe", "İ", "ΑΣ", "ß"]
_NUMBERS = st.one_of(
    st.integers(-5, 5),
    st.integers(-(2**63) + 1, 2**63 - 1),
    st.sampled_from([2**53 + 1, 2**63 - 1, -(2**63) + 1]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 0.5, 1.0, 1e300, -1e-300]),
)


def _category_values(vocab: list[str]) -> st.SearchStrategy[Any]:
    known = st.sampled_from(vocab) if vocab else st.just("a")
    return known | st.sampled_from(["castle", "", "1", "01"]) | st.integers(-3, 3)


def _value_kinds(col_type: str, vocab: list[str]) -> list[st.SearchStrategy[Any]]:
    """Strategies for one column: each typed alone, then mixed."""
    if col_type == "numeric":
        kinds = [st.integers(-(2**62), 2**62), st.floats(-1e6, 1e6), _NUMBERS]
    elif col_type == "boolean":
        kinds = [st.booleans(), st.sampled_from(_TEXT), st.booleans() | st.sampled_from(_TEXT)]
    else:
        kinds = [
            st.sampled_from(vocab) if vocab else st.just("a"),
            st.integers(-3, 3) | st.sampled_from([2**53 + 1, 2**62]),
            _category_values(vocab),
        ]
    return kinds


@st.composite
def batches(draw: st.DrawFn, encoder: TabularEncoder) -> tuple[dict[str, list[Any]], list[dict]]:
    """(columns, records): the same rows column-wise and as event feature dicts."""
    n = draw(st.integers(0, 12))
    columns: dict[str, list[Any]] = {}
    for col in encoder.spec.columns:
        vocab = encoder.state[col.name].get("vocab", [])
        values = draw(st.sampled_from(_value_kinds(col.type, vocab)))
        if draw(st.booleans()):
            values = st.none() | values
        columns[col.name] = draw(st.lists(values, min_size=n, max_size=n))
    records: list[dict[str, Any]] = []
    for i in range(n):
        record = {}
        for name, values in columns.items():
            if values[i] is not None or draw(st.booleans()):  # None: explicit or absent key
                record[name] = values[i]
        records.append(record)
    return columns, records


def assert_same(a: EncodedBatch, b: EncodedBatch) -> None:
    assert a.numeric.dtype == b.numeric.dtype == np.float32
    assert a.categorical.dtype == b.categorical.dtype == np.int64
    assert a.numeric.shape == b.numeric.shape and a.categorical.shape == b.categorical.shape
    np.testing.assert_array_equal(a.numeric.view(np.uint32), b.numeric.view(np.uint32))
    np.testing.assert_array_equal(a.categorical, b.categorical)
    assert (a.numeric_names, a.categorical_names) == (b.numeric_names, b.categorical_names)
    np.testing.assert_array_equal(a.numeric_groups, b.numeric_groups)
    np.testing.assert_array_equal(a.categorical_groups, b.categorical_groups)
    assert a.feature_names == b.feature_names


def check(encoder: TabularEncoder, columns: dict[str, list[Any]], records: list[dict]) -> None:
    n = len(records)
    expected = encoder.transform(features_from_records(records, encoder.spec))
    assert_same(encoder.transform_columns(columns, n), expected)


@pytest.fixture(scope="module")
def credit_encoder(credit_split: tuple[pd.DataFrame, pd.DataFrame]) -> TabularEncoder:
    train, _ = credit_split
    return TabularEncoder(load_spec("credit_data")).fit(train)


OTHER_SPEC: FeatureSpec = spec_from_mapping(
    {
        "name": "others",
        "entity_key": {"column": "id"},
        "label": {"column": "y", "positive": 1},
        "columns": [
            {"name": "cat", "type": "categorical", "missing": {"indicator": True}},
            {"name": "cat_few", "type": "categorical", "max_categories": 2,
             "missing": {"strategy": "constant", "fill_value": "b"}},
            {"name": "cat_mode", "type": "categorical", "missing": {"strategy": "most_frequent"}},
            {"name": "flag", "type": "boolean", "missing": {"indicator": True}},
            {"name": "flag_custom", "type": "boolean", "true_values": ["Yes", "İ"],
             "false_values": ["NO", "ß"], "missing": {"strategy": "constant", "fill_value": "no"}},
            {"name": "amount", "type": "numeric", "transform": "log1p",
             "missing": {"strategy": "constant", "fill_value": -1, "indicator": True}},
            {"name": "age", "type": "numeric", "missing": {"strategy": "mean"}},
        ],
    }
)  # fmt: skip


@pytest.fixture(scope="module")
def other_encoder() -> TabularEncoder:
    rng = np.random.default_rng(0)
    n = 60
    train = pd.DataFrame(
        {
            "cat": rng.choice(["a", "b", "c", None], n),
            "cat_few": rng.choice(["a", "b", "c"], n),
            # an int column: vocabulary "1", "2", "3", "9007199254740992" (2**53 + 1 rounds to it
            # in a float64 column, as pandas makes of ints with missing values)
            "cat_mode": rng.choice([1, 2, 3, 2**53], n),
            "flag": rng.choice([True, False], n),
            "flag_custom": rng.choice(["Yes", "NO", "ß", None], n),
            "amount": np.where(rng.random(n) < 0.2, np.nan, rng.exponential(1000, n)),
            "age": rng.integers(18, 90, n),
        }
    )
    return TabularEncoder(OTHER_SPEC).fit(train)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@settings(max_examples=120, deadline=None)
@given(data=st.data())
def test_credit_columns_equal_frame_path(
    credit_encoder: TabularEncoder, data: st.DataObject
) -> None:
    check(credit_encoder, *data.draw(batches(credit_encoder)))


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@settings(max_examples=120, deadline=None)
@given(data=st.data())
def test_other_spec_columns_equal_frame_path(
    other_encoder: TabularEncoder, data: st.DataObject
) -> None:
    check(other_encoder, *data.draw(batches(other_encoder)))


@pytest.fixture(scope="module")
def hmda_encoder() -> TabularEncoder:
    from models.data import holdout_split, load_frame

    spec = load_spec("hmda")
    train, _ = holdout_split(load_frame(spec), spec)
    return TabularEncoder(spec).fit(train)


# extreme drawn values standardise to inf alike on both paths (numpy warns as it overflows)
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:overflow encountered in divide:RuntimeWarning")
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_hmda_columns_equal_frame_path(hmda_encoder: TabularEncoder, data: st.DataObject) -> None:
    check(hmda_encoder, *data.draw(batches(hmda_encoder)))


def test_every_shipped_spec_is_covered() -> None:
    assert available_specs() == ["credit_data", "hmda"]  # a new spec: add it to the tests above


def test_credit_rows_from_the_table(
    credit_encoder: TabularEncoder, credit_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    _, hold = credit_split
    frame = hold[credit_encoder.spec.feature_names].head(500)
    records = [
        {k: v for k, v in row.items() if not (isinstance(v, float) and np.isnan(v))}
        for row in frame.to_dict(orient="records")
    ]
    columns = {name: [r.get(name) for r in records] for name in frame.columns}
    check(credit_encoder, columns, records)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize(
    "odd",
    [
        np.float64(2.0),
        np.int64(3),
        "12",
        b"yes",
        1.5,
        True,
        float("nan"),
        2**64,
        2**70,
        -(2**63),
    ],
)
def test_values_outside_the_contract_take_the_pandas_path(
    other_encoder: TabularEncoder, odd: Any
) -> None:
    names = OTHER_SPEC.feature_names
    columns = {name: [odd, None, "a" if name.startswith("cat") else 1] for name in names}
    records = [{name: columns[name][i] for name in names} for i in range(3)]
    check(other_encoder, columns, records)
    alone = {name: [odd] for name in names}
    check(other_encoder, alone, [{name: odd for name in names}])


def test_an_int_beyond_float_fails_as_the_frame_path_does(other_encoder: TabularEncoder) -> None:
    with pytest.raises(OverflowError):
        other_encoder.transform(features_from_records([{"amount": 10**400}], OTHER_SPEC))
    with pytest.raises(OverflowError):
        other_encoder.transform_columns({"amount": [10**400]}, 1)


def test_absent_feature_is_missing_and_lengths_are_checked(
    credit_encoder: TabularEncoder,
) -> None:
    check(credit_encoder, {"Amount": [100, None]}, [{"Amount": 100}, {}])
    with pytest.raises(EncoderError, match="'Amount' has 1 values for 2 rows"):
        credit_encoder.transform_columns({"Amount": [100]}, 2)
    with pytest.raises(EncoderError, match="not fitted"):
        TabularEncoder(OTHER_SPEC).transform_columns({}, 0)
