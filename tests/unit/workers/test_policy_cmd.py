"""`decisionflow policy ...`: optimise a flow's cut-offs for its champion, promote, history."""

from __future__ import annotations

from pathlib import Path

import click
import pandas as pd
import pytest
from click.testing import CliRunner

from decisioning.policy import load_policy
from models.registry import ModelRegistry
from models.spec import FeatureSpec
from models.training import train_family
from pipelines.policy_optimise import flow_policy_ref
from workers.cli import cli
from workers.commands.policy_cmd import policy_group, register

MONEY = ["--gain-good-approved", "1", "--loss-bad-approved", "5", "--review-cost", "0.3"]


@pytest.fixture()
def home(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    credit_split: tuple[pd.DataFrame, pd.DataFrame],
    credit_spec: FeatureSpec,
) -> Path:
    """A throwaway home whose registry holds a logistic-regression credit_data champion."""
    monkeypatch.setenv("DECISIONFLOW_HOME", str(tmp_path))
    for var in ("DECISIONFLOW_POLICIES_DIR", "DECISIONFLOW_REGISTRY_URL"):
        monkeypatch.delenv(var, raising=False)
    registry = ModelRegistry(str(tmp_path / "registry"))
    registry.register(train_family("logreg", credit_split[0], credit_spec), name="credit_data")
    registry.promote("credit_data", 1, reason="test champion")
    return tmp_path


def test_the_policy_group_is_registered() -> None:
    group = click.Group("cli")
    register(group)
    assert set(group.commands) == {"policy"}
    assert set(policy_group.commands) == {"optimise", "promote", "history"}
    assert "policy" in cli.commands


def test_optimise_prints_the_diff_and_values_then_apply_records_who_and_why(home: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(policy_group, ["optimise", "--flow", "credit_data", *MONEY])
    assert out.exit_code == 0, out.output
    assert "cut-offs of the default bands" in out.output
    assert "approve   [0, 0.25)" in out.output  # the old band, next to the new one
    assert "expected value per 1,000 decisions" in out.output
    assert "old 1.1" in out.output and "new 1.2" in out.output
    written = home / "policies" / "credit_data" / "credit-1.2.yaml"
    assert load_policy(written).version == "1.2"
    assert flow_policy_ref("credit_data") == "credit_v1"  # written, not applied

    args = ["optimise", *MONEY, "--apply", "--who", "risk-owner", "--why", "loss rate went up"]
    out = runner.invoke(policy_group, args)
    assert out.exit_code == 0, out.output
    assert "promoted: flow credit_data now decides with credit 1.3" in out.output
    assert flow_policy_ref("credit_data").endswith("credit-1.3.yaml")

    out = runner.invoke(policy_group, ["promote", "--version", "1.2", "--why", "rollback"])
    assert out.exit_code == 0, out.output
    assert "credit 1.3 -> credit 1.2" in out.output

    out = runner.invoke(policy_group, ["history"])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert "risk-owner  1.1 -> 1.3  loss rate went up" in lines[0]
    assert "1.3 -> 1.2  rollback" in lines[1]
    assert lines[2] == f"current: {written}"


def test_optimise_on_a_given_holdout_and_its_errors(
    home: Path, tmp_path: Path, credit_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    runner = CliRunner()
    data = tmp_path / "labelled.csv"
    credit_split[1].head(250).to_csv(data, index=False)
    out = runner.invoke(policy_group, ["optimise", *MONEY, "--holdout", str(data), "--json"])
    assert out.exit_code == 0, out.output
    assert '"rows": 250' in out.output and '"value_per_1000"' in out.output

    both = ["optimise", *MONEY, "--holdout", str(data), "--source", str(data)]
    assert "exclude each other" in runner.invoke(policy_group, both).output
    no_champion = runner.invoke(policy_group, ["optimise", "--flow", "mortgage", *MONEY])
    assert no_champion.exit_code == 1 and "mortgage" in no_champion.output
    unknown = runner.invoke(policy_group, ["optimise", "--flow", "nope", *MONEY])
    assert unknown.exit_code == 1 and "unknown flow 'nope'" in unknown.output
    bad_money = runner.invoke(policy_group, ["optimise", *MONEY, "--review-cost", "-1"])
    assert bad_money.exit_code == 1 and "review_cost" in bad_money.output
