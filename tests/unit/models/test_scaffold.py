"""Inferring a feature spec from a table: types, left-out columns, entity key, positive label,
and the commented YAML that loads back to the same spec."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from models.checks import Problem, errors
from models.data import DataError, labels
from models.encoding import TabularEncoder
from models.scaffold import column_notes, infer_spec, spec_name, spec_yaml
from models.spec import FeatureSpec, spec_from_yaml

N = 120


def _table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "customer": [f"cust-{i:05d}" for i in range(N)],  # unique strings: the entity key
            "amount": rng.exponential(100, N),
            "owner": rng.choice(["Yes", "No"], N),
            "vip": rng.choice([0, 1], N),
            "active": rng.choice(["t", "f"], N),
            "region": rng.choice(["north", "south", "east"], N),
            "country": "NL",  # constant
            "rowno": np.arange(1, N + 1),  # row numbers
            "notes": [None] * (N - 10) + ["x"] * 10,  # mostly missing
            "outcome": np.where(rng.random(N) < 0.3, "bad", "good"),
        }
    )


def _infer(
    frame: pd.DataFrame | None = None,
    *,
    label: str = "outcome",
    positive: str = "bad",
    entity_key: str | None = None,
) -> tuple[FeatureSpec, list[Problem]]:
    table = _table() if frame is None else frame
    return infer_spec(
        table,
        name="shop",
        label=label,
        positive=positive,
        source="csv:shop.csv",
        entity_key=entity_key,
    )


def test_types_are_inferred_and_booleans_list_their_values_and_json_booleans() -> None:
    spec, _ = _infer()
    types = {c.name: c.type for c in spec.columns}
    assert types == {
        "amount": "numeric",
        "owner": "boolean",
        "vip": "boolean",
        "active": "boolean",
        "region": "categorical",
    }
    assert spec.column("owner").true_values == ("Yes", "true")
    assert spec.column("owner").false_values == ("No", "false")
    assert spec.column("vip").true_values == ("1", "true")
    assert spec.column("active").false_values == ("f", "false")
    assert (spec.source, spec.label.positive) == ("csv:shop.csv", "bad")
    TabularEncoder(spec).fit(_table())  # no unlisted boolean value


def test_id_like_constant_and_mostly_missing_columns_are_left_out_with_a_reason() -> None:
    spec, problems = _infer()
    assert spec.entity_key.column == "customer"  # unique, ID-like: the key, not a feature
    left_out = {p.column: p.message for p in problems}
    assert set(left_out) == {"country", "rowno", "notes"}
    assert "same value in every row" in left_out["country"]
    assert "row numbers: consecutive integers 1..120" in left_out["rowno"]
    assert "missing in 92% of rows" in left_out["notes"]
    assert all(p.severity == "warning" for p in problems)
    text = spec_yaml(spec, column_notes(spec, _table(), problems))
    assert "#   country: the same value in every row" in text
    assert "#   rowno: looks like row numbers: consecutive integers 1..120" in text
    for name in ("country", "rowno", "notes"):
        assert f"name: {name}" not in text


def test_an_entity_key_given_or_synthesised() -> None:
    spec, problems = _infer(entity_key="rowno")
    assert spec.entity_key.column == "rowno"
    assert "customer" in {p.column for p in problems}  # now just an ID-like column, left out
    frame = _table().drop(columns=["customer", "rowno"]).assign(row_id=1.5)
    spec, _ = _infer(frame)
    assert spec.entity_key.column == "entity_id"  # row_id is taken by a column
    assert spec.entity_key.synthesize_format == "row-{:06d}"


def test_the_yaml_loads_back_to_the_same_spec_with_yaml_booleans_quoted() -> None:
    frame = _table().assign(outcome=np.where(np.arange(N) % 3 == 0, "yes", "no"))
    spec, problems = _infer(frame, positive="yes")
    text = spec_yaml(spec, column_notes(spec, frame, problems))
    again = spec_from_yaml(text)
    assert again == spec and again.hash == spec.hash
    assert again.label.positive == "yes"  # a string, not YAML's True
    assert "label: {column: outcome, positive: 'yes'}  # positive class: 33.3% of rows" in text
    assert "true_values: ['Yes', 'true']" in text
    assert labels(frame, again).sum() == 40
    assert yaml.safe_load(text)["columns"][0] == {"name": "amount", "type": "numeric"}


def test_a_command_line_positive_matches_typed_label_values() -> None:
    ints = _table().assign(outcome=np.arange(N) % 4 == 0).astype({"outcome": int})
    spec, _ = _infer(ints, positive="1")
    assert spec.label.positive == 1 and isinstance(spec.label.positive, int)
    assert "positive: 1}" in spec_yaml(spec)
    assert labels(ints, spec).sum() == 30
    bools = _table().assign(outcome=np.arange(N) % 4 == 0)
    spec, _ = _infer(bools, positive="True")
    assert spec.label.positive is True
    assert labels(bools, spec).sum() == 30


def test_a_wrong_label_or_positive_is_refused_with_the_fix() -> None:
    with pytest.raises(DataError, match="the values differ only in case: use 'bad'"):
        _infer(positive="BAD")
    with pytest.raises(DataError, match=r"'risky' is not a value .* use one of the values seen"):
        _infer(positive="risky")
    with pytest.raises(DataError, match="label column 'status' is not in the table"):
        _infer(label="status")
    with pytest.raises(DataError, match="fractional numbers"):
        _infer(_table().assign(outcome=np.linspace(0, 1, N)), positive=str(np.linspace(0, 1, N)[1]))


def test_data_errors_come_back_as_error_problems() -> None:
    frame = _table()
    frame.loc[:4, "outcome"] = None
    _, problems = _infer(frame)
    assert [(p.column, p.message) for p in errors(problems)] == [
        ("outcome", "5 row(s) have no label")
    ]
    _, problems = _infer(_table().assign(outcome="bad"))
    (problem,) = errors(problems)
    assert "every row of label column 'outcome' is the positive class" in problem.message


def test_no_usable_feature_is_an_error() -> None:
    frame = pd.DataFrame({"k": range(30), "y": ["a", "b"] * 15, "c": 1})
    with pytest.raises(DataError, match="no usable feature column"):
        infer_spec(frame, name="x", label="y", positive="a", source="csv:x.csv")


def test_spec_name_makes_a_file_stem_valid() -> None:
    assert spec_name("Credit Card (2024)") == "Credit_Card_2024"
    assert spec_name("???") == "flow"


def test_a_mostly_numeric_column_with_strings_and_a_many_valued_label_are_warned() -> None:
    frame = _table().assign(
        score=["n/a" if i % 20 == 0 else str(i % 40) for i in range(N)],
        outcome=np.array(["bad", "good", "unknown"])[np.arange(N) % 3],
    )
    spec, problems = _infer(frame)
    assert spec.column("score").type == "categorical"
    found = {p.column: p for p in problems if p.column in ("score", "outcome")}
    assert found["score"].message == "mostly numbers but some strings: declared categorical"
    assert found["score"].values_seen == '"n/a" (6)'
    assert 'every value but "bad" counts as negative' in found["outcome"].message
    assert {p.severity for p in found.values()} == {"warning"}
