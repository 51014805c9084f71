"""The optimise step of the retrain pipeline: the policies' cut-offs, the registered holdout,
variants stored before promotion, idempotent per run, never failing the run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from models.registry import ModelRegistry
from models.spec import FeatureSpec
from models.variants import read_reports
from pipelines import run_retrain
from pipelines.optimise import optimise_candidate, policy_cutoffs, registered_holdout


def test_cutoffs_come_from_the_policies_bands_and_segments() -> None:
    assert policy_cutoffs(["credit_v1"]) == [0.2, 0.25, 0.45, 0.5]
    assert policy_cutoffs(["credit_v2_conservative"]) == [0.12, 0.15, 0.35, 0.4]
    assert policy_cutoffs() == sorted({*policy_cutoffs(["credit_v1"]), 0.12, 0.15, 0.35, 0.4})


@pytest.fixture()
def run(
    tmp_path: Path, synth_df: pd.DataFrame, synth_spec: FeatureSpec
) -> tuple[dict[str, object], Path, str]:
    spec = tmp_path / "synthetic.yaml"
    spec.write_text(synth_spec.to_yaml())
    work, registry = tmp_path / "run", str(tmp_path / "reg")
    result = run_retrain(
        str(work), str(spec), registry, "synthetic", ["logreg"], frame=synth_df, tune=False,
        min_rows=100,
    )  # fmt: skip
    return result, work, registry


def test_a_run_optimises_the_registered_version_before_promoting_it(
    run: tuple[dict[str, object], Path, str],
) -> None:
    result, work, registry = run
    optimised = result["optimised"]
    assert isinstance(optimised, dict) and optimised["version"] == 1
    assert optimised["servable"] == ["onnx"]
    assert optimised["variants"]["int8"]["status"] == "not_applicable"
    assert optimised["holdout"]["same_as_registered"] is True
    reports = read_reports(ModelRegistry(registry), "synthetic", 1)
    assert reports["onnx"]["servable"] and reports["onnx"]["parity"]["cutoffs"] == policy_cutoffs()
    assert json.loads((work / "optimised.json").read_text()) == optimised
    # idempotent per run: a retry returns what was recorded
    assert optimise_candidate(str(work), registry, "synthetic") == optimised


def test_the_step_never_fails_the_run(tmp_path: Path) -> None:
    work = tmp_path / "run"
    work.mkdir()
    assert optimise_candidate(str(work), str(tmp_path / "reg"), "m")["version"] is None
    (work / "registered.json").write_text(json.dumps({"version": 3}))
    assert optimise_candidate(str(work), str(tmp_path / "reg"), "m", dry_run=True)["skipped"]
    failed = optimise_candidate(str(work), str(tmp_path / "reg"), "m")  # no holdout, no model
    assert failed["version"] == 3 and "error" in failed


def test_the_registered_holdout_is_the_runs_or_the_same_split_again(
    run: tuple[dict[str, object], Path, str], tmp_path: Path, synth_df: pd.DataFrame
) -> None:
    _, work, url = run
    registry = ModelRegistry(url)
    holdout, info = registered_holdout(registry, "synthetic", 1)
    assert "run holdout" in info["source"] and info["same_as_registered"]
    shutil.rmtree(work)  # the run's files are gone: split the data again, as training did
    csv = tmp_path / "synthetic.csv"
    synth_df.to_csv(csv, index=False)
    again, info = registered_holdout(registry, "synthetic", 1, source=csv)
    assert info["same_as_registered"] and "seed 0" in info["source"]
    assert len(again) == len(holdout)
