"""The `models` CLI commands (thin wrappers), driven with click's CliRunner."""

from __future__ import annotations

from pathlib import Path

import click
import pandas as pd
import pytest
from click.testing import CliRunner

from models.data import load_frame
from models.spec import FeatureSpec
from workers.commands.models_cmd import models_group, register


@pytest.fixture()
def small_csv(tmp_path: Path, credit_df: pd.DataFrame, credit_spec: FeatureSpec) -> Path:
    path = tmp_path / "credit_small.csv"
    credit_df.sample(600, random_state=0).drop(columns=["application_id"]).to_csv(path, index=False)
    assert len(load_frame(credit_spec, path)) == 600
    return path


def test_register_adds_the_models_group_only() -> None:
    group = click.Group("cli")
    register(group)
    assert set(group.commands) == {"models"}  # each command once, under `models`
    assert set(models_group.commands) == {
        "train",
        "evaluate",
        "promote",
        "rollback",
        "list",
        "compare",
    }


def test_train_list_promote_rollback_evaluate(
    tmp_path: Path, small_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DECISIONFLOW_RUNS_DIR", str(tmp_path / "runs"))
    runner = CliRunner()
    reg = str(tmp_path / "reg")
    base = ["--registry", reg]
    train = ["train", "--families", "logreg,hgb", "--no-tune", "--source", str(small_csv), *base]
    result = runner.invoke(models_group, [*train, "--promote"])
    assert result.exit_code == 0, result.output
    assert "PROMOTED to champion" in result.output and "no champion" in result.output
    assert "registered credit_data v1" in result.output
    result = runner.invoke(models_group, train)  # the best again, as challenger only
    assert result.exit_code == 0, result.output
    assert (
        "registered credit_data v2" in result.output and "challenger, NOT champion" in result.output
    )
    result = runner.invoke(models_group, ["list", *base])
    assert result.exit_code == 0, result.output
    assert "credit_data" in result.output and "champion" in result.output
    assert "challenger" in result.output
    for version in ("1", "2"):
        result = runner.invoke(
            models_group, ["promote", "credit_data", version, "--reason", "t", *base]
        )
        assert result.exit_code == 0, result.output
    result = runner.invoke(models_group, ["rollback", "credit_data", *base])
    assert result.exit_code == 0, result.output
    assert "rolled back v2 -> v1" in result.output
    result = runner.invoke(
        models_group, ["evaluate", "credit_data", "1", "--source", str(small_csv), *base]
    )
    assert result.exit_code == 0, result.output
    assert "roc_auc" in result.output
    result = runner.invoke(models_group, ["evaluate", "credit_data", "staging", *base])
    assert result.exit_code != 0 and "no alias 'staging'" in result.output
    result = runner.invoke(models_group, ["promote", "credit_data", "99", "--reason", "x", *base])
    assert result.exit_code != 0 and "no version 99" in result.output


def test_registry_url_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DECISIONFLOW_REGISTRY_URL", str(tmp_path / "env-reg"))
    result = CliRunner().invoke(models_group, ["list"])
    assert result.exit_code == 0
    assert str(tmp_path / "env-reg") in result.output
