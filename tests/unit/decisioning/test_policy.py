"""Policy files: shipped policies load, validation errors are clear, YAML round-trips."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from decisioning.policy import (
    Policy,
    PolicyError,
    available_policies,
    check_features,
    dump_policy,
    load_policy,
    parse_policy,
    save_policy,
)

CREDIT_FEATURES = {
    "Seniority", "Home", "Time", "Age", "Marital", "Records", "Job", "Expenses", "Income",
    "Assets", "Debt", "Amount", "Price",
}  # fmt: skip


def base() -> dict[str, Any]:
    return {
        "name": "t",
        "version": "1",
        "decisions": ["approve", "review", "decline"],
        "bands": [
            {"decision": "approve", "from": 0.0, "to": 0.25},
            {"decision": "review", "from": 0.25, "to": 0.5},
            {"decision": "decline", "from": 0.5, "to": 1.0},
        ],
        "rules": [
            {"name": "big", "when": {"feature": "Amount", "op": ">", "value": 4000},
             "decision": "review"},
        ],
        "fallback": {"decision": "review"},
        "reason_codes": {"Seniority": {"code": "R01", "text": "Short employment history"}},
    }  # fmt: skip


def problems_of(data: dict[str, Any], known: set[str] | None = None) -> str:
    with pytest.raises(PolicyError) as info:
        parse_policy(data, known_features=known)
    return str(info.value)


@pytest.mark.parametrize("name", ["credit_v1", "credit_v2_conservative"])
def test_shipped_policies_load_against_credit_features(name: str) -> None:
    policy = load_policy(name, known_features=CREDIT_FEATURES)
    assert policy.name == "credit"
    assert policy.decisions == ["approve", "review", "decline"]
    assert policy.fallback.decision == "review"
    assert policy.fallback.reason.code == "MODEL_UNAVAILABLE"
    assert policy.top_reasons == 3


def test_available_policies_and_unknown_name() -> None:
    assert available_policies() == ["credit_v1", "credit_v2_conservative", "mortgage_v1"]
    with pytest.raises(FileNotFoundError, match="credit_v1"):
        load_policy("nope")


def test_load_from_path_and_yaml_roundtrip(tmp_path: Path) -> None:
    policy = load_policy("credit_v1")
    path = save_policy(policy, tmp_path / "sub" / "p.yaml")
    assert load_policy(path) == policy
    assert load_policy(str(path)) == policy
    assert parse_policy(yaml.safe_load(dump_policy(policy))) == policy


def test_version_number_becomes_string_and_op_aliases() -> None:
    data = base()
    data["version"] = 2
    data["rules"][0]["when"]["op"] = "gt"
    policy = parse_policy(data)
    assert policy.version == "2"
    assert policy.rules[0].when[0].op == ">"


def test_overlapping_bands() -> None:
    data = base()
    data["bands"][1]["from"] = 0.2
    assert "overlap on [0.2, 0.25)" in problems_of(data)


def test_gappy_bands() -> None:
    data = base()
    data["bands"][1]["from"] = 0.3
    assert "gap between approve and review: [0.25, 0.3)" in problems_of(data)


@pytest.mark.parametrize(
    ("index", "field", "value", "message"),
    [
        (0, "from", 0.1, "must start at 0.0"),
        (2, "to", 0.9, "must end at 1.0"),
        (2, "to", 1.5, "outside [0, 1]"),
        (1, "to", 0.25, "empty or reversed"),
    ],
)
def test_bands_outside_or_empty(index: int, field: str, value: float, message: str) -> None:
    data = base()
    data["bands"][index][field] = value
    assert message in problems_of(data)


def test_segment_bands_are_checked_too() -> None:
    data = base()
    data["segments"] = [
        {"name": "renters", "when": {"feature": "Home", "op": "==", "value": "rent"},
         "bands": [{"decision": "approve", "from": 0.0, "to": 0.5},
                   {"decision": "decline", "from": 0.6, "to": 1.0}]},
    ]  # fmt: skip
    assert "segment renters: gap between approve and decline" in problems_of(data)


def test_unknown_decision_names() -> None:
    data = base()
    data["rules"][0]["decision"] = "escalate"
    data["fallback"]["decision"] = "maybe"
    message = problems_of(data)
    assert "rule big: unknown decision 'escalate'" in message
    assert "fallback: unknown decision 'maybe'" in message


def test_unknown_features_against_known_set() -> None:
    data = base()
    data["reason_codes"]["Shoe_size"] = {"code": "R99", "text": "x"}
    with pytest.raises(PolicyError) as info:
        parse_policy(data, known_features={"Seniority"})
    assert info.value.problems == [
        "rule big: unknown feature 'Amount'",
        "reason_codes: unknown feature 'Shoe_size'",
    ]
    # entity_id is always known; without a known set nothing is checked
    data["rules"][0]["when"] = {"feature": "entity_id", "op": "in", "value": ["x"]}
    check_features(parse_policy(data), {"Seniority", "Shoe_size"})


@pytest.mark.parametrize(
    ("when", "message"),
    [
        ({"feature": "Amount", "op": "~", "value": 1}, "Input should be '<'"),
        ({"feature": "Amount", "op": ">", "value": "big"}, "value must be a number"),
        ({"feature": "Amount", "op": ">", "value": True}, "value must be a number"),
        ({"feature": "Amount", "op": "==", "value": [1]}, "value must be one string"),
        ({"feature": "Amount", "op": "==", "value": None}, "value must be one string"),
        ({"feature": "Amount", "op": "in", "value": 3}, "non-empty list"),
        ({"feature": "Amount", "op": "in", "value": []}, "non-empty list"),
        ({"feature": "Amount", "op": "is_missing", "value": "yes"}, "omitted, true or false"),
        ({"feature": "Amount", "op": ">", "value": 1, "oops": 2}, "Extra inputs"),
    ],
)
def test_bad_operator_or_value(when: dict[str, Any], message: str) -> None:
    data = base()
    data["rules"][0]["when"] = when
    assert message in problems_of(data)


def test_duplicate_names_and_extra_keys() -> None:
    data = base()
    data["rules"].append(copy.deepcopy(data["rules"][0]))
    assert "rule names must be unique: big" in problems_of(data)
    data = base()
    data["colour"] = "red"
    assert "colour: Extra inputs are not permitted" in problems_of(data)


def test_yaml_errors_are_policy_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(path)
    path.write_text("- just a list\n")
    with pytest.raises(PolicyError, match="must be a mapping"):
        load_policy(path)


def test_policy_is_frozen() -> None:
    policy = parse_policy(base())
    assert isinstance(policy, Policy)
    with pytest.raises(Exception):  # noqa: B017 - pydantic ValidationError on frozen models
        policy.version = "2"  # type: ignore[misc]


def test_docs_embed_the_shipped_example() -> None:
    docs = Path(__file__).resolve().parents[3] / "docs" / "policies.md"
    shipped = Path(__file__).resolve().parents[3] / "decisioning" / "policies" / "credit_v1.yaml"
    assert shipped.read_text() in docs.read_text(), "docs/policies.md: re-paste credit_v1.yaml"
