"""The one retrain pipeline: its rules (best candidate, gate, what gets registered) and a whole
run in a work dir, as the CLI and the retrain DAG both run it."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from models.registry import ModelRegistry
from models.spec import FeatureSpec
from pipelines import alias_for, evaluate_registered, pick_best, run_retrain


def test_best_candidate_rule() -> None:
    metrics = {
        "logreg": {"roc_auc": 0.80, "brier": 0.15},
        "hgb": {"roc_auc": 0.85, "brier": 0.17},
        "torch_mlp": {"roc_auc": 0.85, "brier": 0.14},
    }
    assert pick_best(metrics, "roc_auc") == "hgb"  # a tie goes to the family listed first
    assert pick_best(metrics, "brier") == "torch_mlp"  # lower is better
    nan = {"a": {"roc_auc": math.nan}, "b": {"roc_auc": None}, "c": {"roc_auc": 0.5}}
    assert pick_best(nan, "roc_auc") == "c"  # no value never wins
    with pytest.raises(ValueError, match="no candidate has a roc_auc"):
        pick_best({"a": {"roc_auc": None}}, "roc_auc")


def test_what_gets_registered_where() -> None:
    assert alias_for(passed=True, promote=True) == "champion"
    assert alias_for(passed=False, promote=True) == "challenger"
    assert alias_for(passed=True, promote=False) == "challenger"


def _spec_file(tmp_path: Path, spec: FeatureSpec) -> str:
    path = tmp_path / "synthetic.yaml"
    path.write_text(spec.to_yaml())
    return str(path)


def test_a_run_registers_the_best_and_the_gate_guards_the_champion(
    tmp_path: Path, synth_df: pd.DataFrame, synth_spec: FeatureSpec
) -> None:
    spec = _spec_file(tmp_path, synth_spec)
    registry = str(tmp_path / "reg")

    def run(n: int, families: list[str]) -> dict[str, object]:
        return run_retrain(
            str(tmp_path / f"run{n}"),
            spec,
            registry,
            "synthetic",
            families,
            frame=synth_df,
            tune=False,
            min_rows=100,
            reference_path=str(tmp_path / "reference.parquet"),
        )

    first = run(1, ["logreg", "hgb"])
    reg = ModelRegistry(registry)
    assert first["registered"]["family"] == first["evaluation"]["best"]  # type: ignore[index]
    assert [v.version for v in reg.list_versions("synthetic")] == [1]  # only the best
    assert reg.alias_version("synthetic", "champion") == 1
    assert first["gate"]["reasons"] == ["no champion"]  # type: ignore[index]
    assert (tmp_path / "reference.parquet").is_file()

    # the same data and seed again: an identical challenger cannot beat the champion
    second = run(2, ["logreg", "hgb"])
    assert second["promotion"]["promoted"] is False  # type: ignore[index]
    assert reg.alias_version("synthetic", "champion") == 1
    assert reg.alias_version("synthetic", "challenger") == 2
    champion_moves = [e for e in reg.history("synthetic") if e.alias == "champion"]
    assert len(champion_moves) == 1 and champion_moves[0].verdict is not None

    # the registered metadata lets evaluate_registered rebuild the very same holdout
    csv = tmp_path / "synth.csv"
    synth_df.to_csv(csv, index=False)
    _, same = evaluate_registered(reg, "synthetic", "champion", source=csv)
    assert same


def test_a_champion_that_cannot_load_is_replaced_with_the_reason(
    tmp_path: Path, synth_df: pd.DataFrame, synth_spec: FeatureSpec
) -> None:
    spec = _spec_file(tmp_path, synth_spec)
    registry = str(tmp_path / "reg")
    common = {"frame": synth_df, "tune": False, "min_rows": 100}
    run_retrain(str(tmp_path / "a"), spec, registry, "synthetic", ["logreg"], **common)  # type: ignore[arg-type]
    encoder = tmp_path / "reg" / "synthetic" / "versions" / "1" / "encoder.json"
    encoder.write_text(encoder.read_text().replace("}", " }", 1))  # tampered: sha256 differs
    again = run_retrain(str(tmp_path / "b"), spec, registry, "synthetic", ["logreg"], **common)  # type: ignore[arg-type]
    assert again["promotion"]["promoted"] is True  # type: ignore[index]
    assert "cannot score the holdout" in again["gate"]["reasons"][0]  # type: ignore[index]
