"""`models train | evaluate | compare`: --threshold, compare's --source and --out, and the
data check (the spec's label.min_share) before any training."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from tests.unit.card_default import card_spec
from workers.commands.models_cmd import models_group

REFUSED = "the rarer class is 3.3% of rows (at least 5.0% needed, label.min_share"


@pytest.fixture()
def small_csv(tmp_path: Path, credit_df: pd.DataFrame) -> Path:
    path = tmp_path / "credit_small.csv"
    credit_df.sample(600, random_state=0).drop(columns=["application_id"]).to_csv(path, index=False)
    return path


@pytest.fixture()
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Work in ``tmp_path`` (a stray relative file would land there), runs under it too."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DECISIONFLOW_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path


def _card_yaml(folder: Path, min_share: float | None = None) -> str:
    spec = card_spec(min_share)
    path = folder / f"card-{min_share}.yaml"
    path.write_text(spec.to_yaml())
    return str(path)


def test_compare_one_family_prints_and_writes_no_file(in_tmp: Path, small_csv: Path) -> None:
    args = ["compare", "--families", "hgb", "--source", str(small_csv), "--min-rows", "100"]
    result = CliRunner().invoke(models_group, [*args, "--no-tune"])
    assert result.exit_code == 0, result.output
    assert "\nhgb " in result.output
    assert "(accuracy, precision, recall, f1) at threshold 0.5" in result.output
    assert "wrote" not in result.output
    assert list(in_tmp.rglob("*.md")) == []  # docs/model-comparison.md is no default any more


def test_compare_out_and_threshold(in_tmp: Path, small_csv: Path) -> None:
    out = in_tmp / "reports" / "cmp.md"
    args = ["compare", "--families", "logreg", "--source", str(small_csv), "--min-rows", "100"]
    result = CliRunner().invoke(models_group, [*args, "--threshold", "0.3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "at threshold 0.3" in result.output and f"wrote {out}" in result.output
    text = out.read_text()
    assert "at 0.3." in text and f"--source {small_csv} --threshold 0.3" in text
    result = CliRunner().invoke(models_group, [*args, "--threshold", "1.5"])
    assert result.exit_code != 0 and "--threshold" in result.output


def test_compare_checks_the_data_before_training(in_tmp: Path, small_csv: Path) -> None:
    one_class = in_tmp / "one_class.csv"
    pd.read_csv(small_csv).assign(Status="good").to_csv(one_class, index=False)
    args = ["compare", "--families", "hgb", "--source", str(one_class), "--min-rows", "100"]
    result = CliRunner().invoke(models_group, args)
    assert result.exit_code == 1, result.output
    assert "failed validation" in result.output and "rarer class is 0.0%" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_train_and_compare_refuse_below_the_spec_min_share_alike(in_tmp: Path) -> None:
    strict = _card_yaml(in_tmp, min_share=0.05)
    runner = CliRunner()
    for command in (
        ["train", "--registry", str(in_tmp / "reg")],
        ["compare"],
    ):
        result = runner.invoke(models_group, [*command, "--spec", strict, "--families", "logreg"])
        assert result.exit_code == 1, result.output
        assert REFUSED in result.output
    assert not (in_tmp / "reg").exists()


def test_card_default_trains_at_the_default_floor_and_evaluates_at_a_threshold(
    in_tmp: Path,
) -> None:
    card = _card_yaml(in_tmp)
    reg = ["--registry", str(in_tmp / "reg")]
    runner = CliRunner()
    train = ["train", "--spec", card, "--families", "logreg", "--no-tune", *reg]
    result = runner.invoke(models_group, [*train, "--threshold", "0.1"])
    assert result.exit_code == 0, result.output
    assert "registered card_default v1" in result.output
    assert "at threshold 0.1" in result.output
    result = runner.invoke(
        models_group, ["evaluate", "card_default", "1", "--threshold", "0.1", *reg]
    )
    assert result.exit_code == 0, result.output
    lines = {line.split(":")[0].strip(): line for line in result.output.splitlines()}
    assert lines["threshold"].endswith("0.1000")
    recall_low = float(lines["recall"].split(":")[1])
    assert recall_low > float(lines["recall@0.5"].split(":")[1])
    assert "at threshold 0.1" in result.output


def test_train_for_a_flow_registers_its_spec_under_the_flows_model_name(in_tmp: Path) -> None:
    from models.registry import ModelRegistry

    registry = in_tmp / "registry"
    args = ["train", "--flow", "mortgage", "--families", "logreg", "--no-tune"]
    result = CliRunner().invoke(models_group, [*args, "--registry", str(registry)])
    assert result.exit_code == 0, result.output
    meta = ModelRegistry(str(registry)).metadata("mortgage", 1)
    assert meta["spec_name"] == "hmda"
