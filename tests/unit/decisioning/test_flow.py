"""Decision flow files: shipped flows load, name their parts, and bad files say what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from decisioning.flow import FlowError, available_flows, load_flow, parse_flow
from decisioning.policy import load_policy


def test_the_shipped_flows_are_credit_and_mortgage() -> None:
    assert available_flows() == ["credit_data", "mortgage"]


@pytest.mark.parametrize("name", ["credit_data", "mortgage"])
def test_a_shipped_flow_names_a_shipped_policy(name: str) -> None:
    flow = load_flow(name)
    assert flow.name == name
    assert load_policy(flow.policy).decisions


def test_the_model_name_is_the_flow_name_unless_set() -> None:
    base = {"name": "churn", "spec": "churn.yaml", "policy": "churn_v1"}
    assert parse_flow(base).model_name == "churn"
    assert parse_flow({**base, "model": "churn_v2"}).model_name == "churn_v2"


def test_two_shipped_flows_share_no_topic() -> None:
    credit, mortgage = load_flow("credit_data"), load_flow("mortgage")
    assert credit.topics == {}  # the deployment's default names
    assert set(mortgage.topics) == {
        "events",
        "decisions",
        "shadow",
        "dlq",
        "outcomes",
        "duplicates",
    }
    assert not {"events", "decisions", "events.dlq", "outcomes"} & set(mortgage.topics.values())


def test_a_flow_file_is_read_from_a_path(tmp_path: Path) -> None:
    path = tmp_path / "churn.yaml"
    path.write_text("name: churn\nspec: churn_spec.yaml\npolicy: churn_policy.yaml\n")
    assert load_flow(path).spec == "churn_spec.yaml"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"spec": "s", "policy": "p"}, "name"),
        ({"name": "bad name", "spec": "s", "policy": "p"}, "name"),
        ({"name": "x", "spec": "s", "policy": "p", "topics": {"evnts": "e"}}, "topics"),
        ({"name": "x", "spec": "s", "policy": "p", "colour": "red"}, "colour"),
        (["not", "a", "mapping"], "mapping"),
    ],
)
def test_an_invalid_flow_names_the_field(data: object, message: str) -> None:
    with pytest.raises(FlowError, match=message):
        parse_flow(data)


def test_an_unknown_flow_lists_the_shipped_ones() -> None:
    with pytest.raises(FlowError, match="credit_data"):
        load_flow("nope")
    with pytest.raises(FlowError, match="not found"):
        load_flow("missing/flow.yaml")
