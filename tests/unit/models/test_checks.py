"""Problems of a table against its spec: wrong positive labels and unlisted boolean values stop
training with the values seen and the fix; find_problems names every problem of a table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.checks import Problem, errors, find_problems, id_like_reason
from models.data import DataError, labels, load_frame, read_source
from models.encoding import TabularEncoder
from models.spec import FeatureSpec, load_spec, spec_from_mapping, spec_from_yaml

N = 200


def _spec(**overrides: object) -> FeatureSpec:
    data: dict[str, object] = {
        "name": "t",
        "entity_key": {"column": "id"},
        "label": {"column": "y", "positive": "yes"},
        "columns": [
            {"name": "x", "type": "numeric"},
            {"name": "flag", "type": "boolean", "true_values": ["yes"], "false_values": ["no"]},
        ],
    }
    data.update(overrides)
    return spec_from_mapping(data)


def _frame(n: int = N) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "flag": rng.choice(["yes", "no"], n),
            "y": np.where(np.arange(n) % 4 == 0, "yes", "no"),
        }
    )


# ------------------------------------------------------------------ labels(): wrong positive
def test_a_case_mismatch_names_the_column_the_values_and_the_right_spelling() -> None:
    spec = _spec(label={"column": "y", "positive": "Yes"})
    with pytest.raises(DataError) as err:
        labels(_frame(), spec)
    text = str(err.value)
    assert "label column 'y'" in text and "'Yes'" in text
    assert '"no" (150), "yes" (50)' in text  # values seen, with counts
    assert 'differs only in case: positive: "yes"' in text


def test_an_unquoted_yaml_yes_is_a_boolean_and_the_message_says_to_quote_it() -> None:
    text = """
name: t
entity_key: {column: id}
label: {column: y, positive: yes}
columns: [{name: x, type: numeric}]
"""
    spec = spec_from_yaml(text)
    assert spec.label.positive is True  # what YAML made of it
    with pytest.raises(DataError) as err:
        labels(_frame(), spec)
    message = str(err.value)
    assert "YAML boolean" in message and 'quote it: positive: "yes"' in message


def test_a_quoted_number_against_a_numeric_label_says_to_write_it_unquoted() -> None:
    frame = _frame().assign(y=np.where(np.arange(N) % 4 == 0, 1.0, 0.0))
    with pytest.raises(DataError, match=r"write it unquoted: positive: 1$"):
        labels(frame, _spec(label={"column": "y", "positive": "1"}))
    assert labels(frame, _spec(label={"column": "y", "positive": 1})).sum() == 50


def test_an_unrelated_positive_lists_values_to_choose_from() -> None:
    with pytest.raises(DataError, match=r'e\.g\. positive: "no" or positive: "yes"$'):
        labels(_frame(), _spec(label={"column": "y", "positive": "bad"}))


def test_a_label_with_every_row_positive_is_refused() -> None:
    frame = _frame().assign(y="yes")
    with pytest.raises(DataError, match="every row of label column 'y' is the positive class"):
        labels(frame, _spec())


def test_a_single_valued_label_without_the_positive_says_both_classes_are_needed() -> None:
    with pytest.raises(DataError) as err:
        labels(_frame().assign(y="no"), _spec())
    assert "no row of label column 'y'" in str(err.value)
    assert "one value only" in str(err.value)


def test_many_label_values_are_cut_to_ten_and_counted() -> None:
    frame = _frame().assign(y=[f"v{i % 15}" for i in range(N)])
    with pytest.raises(DataError, match=r"\.\.\. \(5 more\)"):
        labels(frame, _spec())


def test_good_labels_still_encode() -> None:
    assert labels(_frame(), _spec()).tolist()[:4] == [1, 0, 0, 0]


# ------------------------------------------------------------------ encoder fit: booleans
def test_fitting_a_boolean_with_an_unlisted_value_names_it_and_the_fix() -> None:
    frame = _frame()
    frame.loc[:2, "flag"] = "maybe"
    with pytest.raises(DataError) as err:
        TabularEncoder(_spec()).fit(frame)
    text = str(err.value)
    assert "boolean column 'flag'" in text and '"maybe" (3)' in text
    assert "true_values ['yes']" in text and "type: categorical" in text


def test_listed_values_case_insensitively_fit_and_serving_stays_lenient() -> None:
    frame = _frame()
    frame.loc[0, "flag"] = "YES"
    encoder = TabularEncoder(_spec()).fit(frame)  # "YES" is listed (case-insensitive)
    out = encoder.transform(pd.DataFrame({"x": [0.0], "flag": ["maybe"]}))
    fill = encoder.state["flag"]["fill"]  # serving: an unlisted value is a missing one
    assert out.numeric[0, 1] == pytest.approx(
        (fill - encoder.state["flag"]["mean"]) / encoder.state["flag"]["std"]
    )
    frame.loc[1, "flag"] = "maybe"
    TabularEncoder(_spec()).fit(frame, check_booleans=False)  # an explicit opt-out


# ------------------------------------------------------------------ find_problems
def _by_column(problems: list[Problem]) -> dict[str, list[Problem]]:
    found: dict[str, list[Problem]] = {}
    for problem in problems:
        found.setdefault(problem.column, []).append(problem)
    return found


def test_every_kind_of_problem_is_found_with_its_severity() -> None:
    rng = np.random.default_rng(1)
    frame = _frame()
    frame.loc[:4, "flag"] = "perhaps"
    frame.loc[7, "y"] = None
    frame["row"] = np.arange(N)  # row numbers
    frame["code"] = [f"c-{i:04d}" for i in range(N)]  # unique strings
    frame["same"] = "x"
    frame["sparse"] = np.where(np.arange(N) < 150, np.nan, rng.normal(size=N))  # 75 % missing
    frame["often"] = np.where(np.arange(N) < 60, np.nan, rng.normal(size=N))  # 30 % missing
    frame["amount"] = ["n/a" if i % 10 == 0 else str(i) for i in range(N)]
    frame["city"] = [f"city{i % 60}" for i in range(N)]
    columns = [
        {"name": "flag", "type": "boolean", "true_values": ["yes"], "false_values": ["no"]},
        *[{"name": c, "type": "numeric"} for c in ("row", "sparse", "often", "amount")],
        *[{"name": c, "type": "categorical"} for c in ("code", "same")],
        {"name": "city", "type": "categorical", "max_categories": 50},
        {"name": "gone", "type": "numeric"},
    ]
    found = _by_column(find_problems(_spec(columns=columns), frame))
    expected = {
        "gone": ("error", "not in the table"),
        "y": ("error", "1 row(s) have no label"),
        "flag": ("error", "outside its true_values"),
        "row": ("warning", "row numbers: consecutive integers 0..199"),
        "code": ("warning", "200 distinct strings in 200 rows"),
        "same": ("warning", "the same value in every row"),
        "sparse": ("error", "missing in 75% of rows"),
        "often": ("warning", "missing in 30% of rows"),
        "amount": ("error", "not numbers"),
        "city": ("warning", "60 distinct values, more than max_categories 50"),
    }
    assert set(found) == set(expected)
    for column, (severity, text) in expected.items():
        assert [(p.severity, text in p.message) for p in found[column]] == [(severity, True)]
    assert found["amount"][0].values_seen == '"n/a" (20)'
    assert found["flag"][0].values_seen == '"perhaps" (5)'


def test_label_problems_positive_absent_and_a_rare_class() -> None:
    frame = _frame()
    (problem,) = find_problems(_spec(label={"column": "y", "positive": "Yes"}), frame)
    assert (problem.column, problem.severity) == ("y", "error")
    assert str(problem).startswith("y: no row of label column 'y' equals the positive class")
    assert 'seen: "no" (150), "yes" (50)) -> the value differs only in case' in str(problem)
    rare = frame.assign(y=np.where(np.arange(N) == 0, "yes", "no"))
    (problem,) = find_problems(
        _spec(label={"column": "y", "positive": "yes", "min_share": 0.05}), rare
    )
    assert "the rarer class is 0.50% of rows, below label.min_share 0.05" in problem.message
    (problem,) = find_problems(_spec(label={"column": "outcome", "positive": "yes"}), frame)
    assert problem.message == "the label column is not in the table"
    assert problem.values_seen == "x, flag, y"


def test_a_clean_table_and_the_shipped_specs_have_no_problems() -> None:
    assert find_problems(_spec(), _frame()) == []
    spec = load_spec("hmda")
    assert find_problems(spec, read_source(str(spec.source))) == []
    assert find_problems(spec, load_frame(spec)) == []


def test_id_like_needs_enough_rows_and_integers_all_distinct() -> None:
    assert id_like_reason(pd.Series([f"k{i}" for i in range(10)])) is None  # too few rows
    almost = pd.Series([*range(99), 5])  # one repeat: an amount, not an id
    assert id_like_reason(almost) is None
    assert id_like_reason(pd.Series(np.arange(100) * 7)) is not None  # distinct integers
    assert id_like_reason(pd.Series(np.random.default_rng(0).normal(size=100))) is None


def test_problem_text_and_errors() -> None:
    warning = Problem("a", "odd", severity="warning")
    error = Problem("b", "bad", "1 (3)", "do this")
    assert str(warning) == "a: odd"
    assert str(error) == "b: bad (seen: 1 (3)) -> do this"
    assert errors([warning, error]) == [error]
