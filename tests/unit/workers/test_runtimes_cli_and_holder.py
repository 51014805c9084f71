"""Score runtimes in the workers: the setting, the model holder loading with it (and saying
which runtime scores and which explains), `models optimise` and the variants in `models list`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from prometheus_client import REGISTRY
from pydantic import ValidationError

from models.registry import ModelRegistry
from models.spec import FeatureSpec
from models.training import train_family
from workers.commands.models_cmd import models_group
from workers.model_holder import ModelHolder
from workers.settings import WorkerSettings


@pytest.fixture()
def registered(
    tmp_path: Path, synth_split: tuple[pd.DataFrame, pd.DataFrame], synth_spec: FeatureSpec
) -> tuple[str, Path]:
    """A logreg version of ``synthetic`` (champion) and the labelled data as a CSV."""
    train, _ = synth_split
    reg = ModelRegistry(tmp_path / "reg")
    version = reg.register(train_family("logreg", train, synth_spec, seed=0), "synthetic")
    reg.promote("synthetic", version, reason="test")
    data = tmp_path / "synthetic.csv"
    pd.concat(synth_split).to_csv(data, index=False)
    return str(tmp_path / "reg"), data


def _optimise(reg: str, data: Path, *extra: str) -> str:
    args = ["optimise", "synthetic", "1", "--registry", reg, "--source", str(data)]
    args += ["--batch-sizes", "1,32", "--min-seconds", "0", "--policy", "credit_v1", *extra]
    result = CliRunner().invoke(models_group, args)
    assert result.exit_code == 0, result.output
    return result.output


def test_optimise_then_list_shows_the_variants_with_parity_and_speed(
    registered: tuple[str, Path],
) -> None:
    reg, data = registered
    out = _optimise(reg, data)
    assert "onnx: servable" in out and "int8: not_applicable" in out
    assert "cut-offs [0.2, 0.25, 0.45, 0.5]" in out  # credit_v1's bands and its segment's
    listing = CliRunner().invoke(models_group, ["list", "--registry", reg])
    assert listing.exit_code == 0, listing.output
    versions, variants = listing.output.split("runtime variants")
    assert "synthetic" in versions and "champion" in versions
    row = next(line for line in variants.splitlines() if line.startswith("synthetic"))
    cells = row.split()
    assert cells[2:5] == ["onnx", "servable", "cpu"]
    assert "onnx/native" in row and cells[-1] == "yes"  # scores by onnx, reasons native; auto


def test_a_variant_refused_by_its_bound_is_listed_not_servable(
    registered: tuple[str, Path],
) -> None:
    reg, data = registered
    out = _optimise(reg, data, "--bound", "onnx.max_abs_delta=-1", "--variants", "onnx")
    assert "onnx: not_servable" in out and "bound -1" in out
    listing = CliRunner().invoke(models_group, ["list", "synthetic", "--registry", reg])
    row = next(line for line in listing.output.splitlines() if " onnx " in line)
    assert "not_servable" in row and not row.rstrip().endswith("yes")  # auto skips it
    bad = CliRunner().invoke(
        models_group, ["optimise", "synthetic", "1", "--registry", reg, "--bound", "onnx=1"]
    )
    assert bad.exit_code != 0 and "bad bound" in bad.output


def test_list_without_variants_prints_no_variants_table(registered: tuple[str, Path]) -> None:
    reg, _ = registered
    listing = CliRunner().invoke(models_group, ["list", "--registry", reg])
    assert listing.exit_code == 0 and "runtime variants" not in listing.output


def _info(flow: str = "synthetic") -> dict[str, str]:
    """The model info metric of ``flow`` (its model name when the holder names no flow)."""
    for metric in REGISTRY.collect():
        if metric.name == "decisionflow_model":
            for sample in metric.samples:
                labels = dict(sample.labels)
                if labels.pop("flow") == flow:
                    return labels
    return {}


def test_the_holder_loads_the_configured_runtime_and_says_so(
    registered: tuple[str, Path], synth_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    reg, data = registered
    _, hold = synth_split
    registry = ModelRegistry(reg)
    native = ModelHolder(registry, "synthetic", runtime="auto").load()  # no variants yet
    assert native.score_runtime == "native" and _info()["score_runtime"] == "native"
    _optimise(reg, data)
    for runtime, expected in (("auto", "onnx"), ("onnx", "onnx"), ("torch", "native")):
        model = ModelHolder(registry, "synthetic", runtime=runtime).load()
        assert getattr(model, "score_runtime", "native") == expected
        assert _info() == {
            "name": "synthetic",
            "version": "1",
            "score_runtime": expected,
            "reason_runtime": "native",
        }
        np.testing.assert_allclose(model.score(hold), native.score(hold), rtol=0, atol=1e-6)
    # a variant that cannot be used leaves the native model scoring (int8: none for logreg)
    assert ModelHolder(registry, "synthetic", runtime="int8").load().score_runtime == "native"


def test_the_runtime_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert WorkerSettings().runtime == "native"
    monkeypatch.setenv("DECISIONFLOW_RUNTIME", "auto")
    assert WorkerSettings().runtime == "auto"
    monkeypatch.setenv("DECISIONFLOW_RUNTIME", "tensorrt")
    with pytest.raises(ValidationError):
        WorkerSettings()
