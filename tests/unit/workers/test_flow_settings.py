"""A worker serving several decision flows: one loop's settings per flow, names kept apart."""

from __future__ import annotations

from pathlib import Path

import pytest

from workers.settings import WorkerSettings


def _settings(monkeypatch: pytest.MonkeyPatch, flows: str | None) -> WorkerSettings:
    if flows is not None:
        monkeypatch.setenv("DECISIONFLOW_FLOWS", flows)
    return WorkerSettings(_env_file=None)


@pytest.mark.parametrize("value", ["credit_data,mortgage", ' ["credit_data", "mortgage"]'])
def test_flows_come_as_a_list_or_comma_separated(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    assert _settings(monkeypatch, value).flows == ["credit_data", "mortgage"]


def test_without_flows_one_loop_keeps_the_deployment_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = _settings(monkeypatch, None)
    assert s.flow_settings() == [s]
    assert s.flow_name == s.model_name == "credit_data"


def test_each_flow_gets_its_own_model_policy_topics_group_and_transactions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    credit, mortgage = _settings(monkeypatch, "credit_data,mortgage").flow_settings()
    assert (credit.flow_name, credit.model_name, credit.policy) == (
        "credit_data",
        "credit_data",
        "credit_v1",
    )
    assert (mortgage.flow_name, mortgage.model_name, mortgage.policy) == (
        "mortgage",
        "mortgage",
        "mortgage_v1",
    )
    # the flow on the default topics keeps the deployment's group: its offsets and claims
    assert (credit.group_id, credit.transactional_id_prefix) == ("decisionflow", "decisionflow")
    assert (mortgage.group_id, mortgage.transactional_id_prefix) == (
        "decisionflow.mortgage",
        "decisionflow.mortgage",
    )
    assert set(credit.topics.names()).isdisjoint(mortgage.topics.names())


def test_another_flows_challenger_is_not_carried_over(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DECISIONFLOW_CHALLENGER_MODEL", "challenger")
    credit, mortgage = _settings(monkeypatch, "credit_data,mortgage").flow_settings()
    assert credit.challenger_model == "challenger" and mortgage.challenger_model is None


def test_two_flows_on_one_events_topic_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    twin = tmp_path / "twin.yaml"
    twin.write_text("name: twin\nspec: credit_data\npolicy: credit_v1\n")
    with pytest.raises(ValueError, match="both read topic 'events'"):
        _settings(monkeypatch, f"credit_data,{twin}").flow_settings()


def test_a_flows_loop_decides_with_its_promoted_policy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from decisioning.policy import load_policy
    from pipelines.policy_optimise import promote_policy, write_policy_version

    monkeypatch.setenv("DECISIONFLOW_POLICIES_DIR", str(tmp_path))
    newer = load_policy("mortgage_v1").model_copy(update={"version": "1.1"})
    path = write_policy_version("mortgage", newer, tmp_path)
    promote_policy("mortgage", "1.1", who="test", why="cut-offs", root=tmp_path)
    credit, mortgage = _settings(monkeypatch, "credit_data,mortgage").flow_settings()
    assert mortgage.policy == str(path) and credit.policy == "credit_v1"
