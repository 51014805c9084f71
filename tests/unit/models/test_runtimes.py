"""Runtime variants: ONNX exports score like the native model (every family), optimised
variants are stored signed with their parity and speed, a variant that breaks parity is not
servable and never chosen, and the runtime choice rules."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from models import onnx_export
from models.family import FAMILY_NAMES, ModelFamily
from models.optimise import OptimiseSettings, optimise_model, optimise_version
from models.parity import ParityBounds, bounds_with, parity_report, parse_bound
from models.registry import ModelRegistry, RegistryIntegrityError
from models.runtimes import (
    NATIVE,
    OnnxRuntime,
    RuntimeModel,
    TorchCastRuntime,
    canonical_runtime,
    load_with_runtime,
    select_variant,
)
from models.spec import FeatureSpec
from models.training import TrainedModel, train_family
from models.variants import VariantError, read_reports, variant_entries

FAST = {"torch_mlp": {"epochs": 15}, "logreg": {}, "hgb": {"max_iter": 60}}
CUTOFFS = (0.2, 0.25, 0.45, 0.5)
QUICK = OptimiseSettings(cutoffs=CUTOFFS, batch_sizes=(1, 32), min_seconds=0.0)


@pytest.fixture(scope="module")
def trained(
    synth_split: tuple[pd.DataFrame, pd.DataFrame], synth_spec: FeatureSpec
) -> dict[str, TrainedModel]:
    train, _ = synth_split
    return {
        f: train_family(f, train, synth_spec, FAST[f], seed=0, device="cpu") for f in FAMILY_NAMES
    }


@pytest.fixture()
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "reg")


def _odd_rows(hold: pd.DataFrame) -> pd.DataFrame:
    """Rows the encoder has to work for: unseen categories and missing values."""
    odd = hold.head(12).copy()
    odd.loc[odd.index[:4], "color"] = "purple"  # never seen in training
    odd.loc[odd.index[4:8], "driver"] = np.nan
    odd.loc[odd.index[8:], "color"] = None
    return odd


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_the_onnx_export_scores_like_the_native_model(
    family: str, trained: dict[str, TrainedModel], synth_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    _, hold = synth_split
    model = trained[family]
    runtime = OnnxRuntime("onnx", onnx_export.export_onnx(model.model)[0], model.model)
    for frame in (hold, _odd_rows(hold)):
        batch = model.encoder.transform(frame)
        native = model.model.predict_proba(batch)
        np.testing.assert_allclose(runtime.predict_proba(batch), native, rtol=0, atol=1e-6)
    empty = model.encoder.transform(hold.head(0))
    assert runtime.predict_proba(empty).shape == (0,)


def test_the_hgb_export_keeps_categorical_splits_exactly(
    synth_split: tuple[pd.DataFrame, pd.DataFrame], synth_spec: FeatureSpec
) -> None:
    """A model whose signal is in a category: the ordinal re-encoding and bitsets hold."""
    train, hold = synth_split
    rigged = train.assign(target=np.where(train["color"] == "green", "yes", "no"))
    model = train_family("hgb", rigged, synth_spec, {"max_iter": 30}, seed=0)
    runtime = OnnxRuntime("onnx", onnx_export.export_onnx(model.model)[0], model.model)
    batch = model.encoder.transform(_odd_rows(hold))
    np.testing.assert_allclose(
        runtime.predict_proba(batch), model.model.predict_proba(batch), rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_optimise_stores_signed_servable_variants_that_score_the_same(
    family: str,
    trained: dict[str, TrainedModel],
    registry: ModelRegistry,
    synth_split: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    _, hold = synth_split
    version = registry.register(trained[family], "m")
    _, outcomes = optimise_version(registry, "m", version, hold, QUICK, {"source": "test"})
    status = {o.variant: o.status for o in outcomes}
    assert status["onnx"] == "servable"
    if family != "torch_mlp":
        assert status["int8"] == status["fp16"] == "not_applicable"
    else:
        assert status["int8"] in ("servable", "not_servable")  # built, judged either way
    if not torch.cuda.is_available():
        assert status["bf16"] in ("not_applicable", "not_available")
    reports = read_reports(registry, "m", version)
    onnx = reports["onnx"]
    assert onnx["servable"] and onnx["parity"]["max_abs_delta"] <= 1e-3
    assert onnx["parity"]["agreement"] == 1.0 and onnx["parity"]["cutoffs"] == list(CUTOFFS)
    assert set(onnx["speed"]["rows_per_s"]) == {"1", "32"} and onnx["reason_runtime"] == NATIVE
    files = registry.verify("m", version)  # signature and checksums cover the variant files
    assert "variant.onnx.model.onnx" in files and "variant.onnx.json" in files

    loaded = registry.load("m", version, device="cpu")
    served = load_with_runtime(registry, loaded, "onnx")
    assert (served.score_runtime, served.reason_runtime) == ("onnx", NATIVE)
    np.testing.assert_allclose(served.score(hold), loaded.score(hold), rtol=0, atol=1e-6)
    names = loaded.spec.feature_names
    columns = {n: hold[n].tolist() for n in names}
    scored = served.score_with_explainer(columns, len(hold))
    native = loaded.score_with_explainer(columns, len(hold))
    np.testing.assert_allclose(scored.scores, native.scores, rtol=0, atol=1e-6)
    rows = np.arange(5)
    np.testing.assert_allclose(scored.explain(rows), native.explain(rows))  # reasons: native
    assert scored.method_used == native.method_used


def _perturbed_export(family: ModelFamily) -> tuple[bytes, str]:
    """The real exporter run on a copy whose output layer is shifted: a broken variant."""
    broken = copy.deepcopy(family)
    net: Any = broken.net  # type: ignore[attr-defined]
    with torch.no_grad():
        net.head[-1].bias += 1.5
    return _real_export(broken)


_real_export = onnx_export.export_onnx


def test_a_variant_that_breaks_parity_is_not_servable_and_never_chosen(
    trained: dict[str, TrainedModel],
    registry: ModelRegistry,
    synth_split: tuple[pd.DataFrame, pd.DataFrame],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, hold = synth_split
    version = registry.register(trained["torch_mlp"], "m")
    monkeypatch.setattr(onnx_export, "export_onnx", _perturbed_export)
    settings = OptimiseSettings(
        cutoffs=CUTOFFS, variants=("onnx",), batch_sizes=(1,), min_seconds=0.0
    )
    _, (outcome,) = optimise_version(registry, "m", version, hold, settings)
    assert outcome.status == "not_servable" and "max |Δscore|" in outcome.detail
    report = read_reports(registry, "m", version)["onnx"]
    assert report["servable"] is False and report["parity"]["max_abs_delta"] > 0.01
    # even if it measured faster than native, auto keeps the native runtime
    faster = {
        "onnx": {**report, "speed": {"rows_per_s": {"500": 9e9}, "native_rows_per_s": {"500": 1}}}
    }
    assert select_variant(faster, "auto", "cpu")[0] == NATIVE
    loaded = registry.load("m", version, device="cpu")
    for asked in ("auto", "onnx"):
        served = load_with_runtime(registry, loaded, asked)
        assert served.score_runtime == NATIVE and served.runtime is None
        np.testing.assert_array_equal(served.score(hold), loaded.score(hold))
    assert "not servable" in load_with_runtime(registry, loaded, "onnx").runtime_note


def test_an_impossibly_tight_bound_refuses_an_exact_enough_variant(
    trained: dict[str, TrainedModel], synth_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    _, hold = synth_split
    settings = OptimiseSettings(
        cutoffs=CUTOFFS,
        bounds=bounds_with(["onnx.max_abs_delta=-1"]),
        variants=("onnx",),
        batch_sizes=(1,),
        min_seconds=0.0,
    )
    (outcome,) = optimise_model(trained["logreg"], hold, settings)
    assert outcome.status == "not_servable" and outcome.report is not None
    assert outcome.report["bounds"]["max_abs_delta"] == -1


def test_a_tampered_variant_file_fails_the_version_check(
    trained: dict[str, TrainedModel],
    registry: ModelRegistry,
    synth_split: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    _, hold = synth_split
    version = registry.register(trained["logreg"], "m")
    settings = OptimiseSettings(variants=("onnx",), batch_sizes=(1,), min_seconds=0.0)
    optimise_version(registry, "m", version, hold, settings)
    path = Path(registry.root) / "m" / "versions" / str(version) / "variant.onnx.json"
    doc = json.loads(path.read_text())
    path.write_text(json.dumps({**doc, "servable": True, "status": "servable"}) + " ")
    with pytest.raises(RegistryIntegrityError, match=r"variant\.onnx\.json"):
        registry.load("m", version)


def _report(servable: bool, rate: float, native: float, device: str = "cpu") -> dict[str, Any]:
    return {
        "servable": servable,
        "status": "servable" if servable else "not_servable",
        "device": device,
        "speed": {"rows_per_s": {"500": rate}, "native_rows_per_s": {"500": native}},
    }


def test_runtime_selection_rules() -> None:
    reports = {
        "onnx": _report(True, 300.0, 100.0),
        "int8": _report(False, 900.0, 100.0),  # fastest, but failed parity
        "fp16": _report(True, 5000.0, 100.0, device="cuda"),  # another device kind
    }
    assert select_variant(reports, "auto", "cpu")[0] == "onnx"
    assert select_variant(reports, "auto", "cuda:0")[0] == "fp16"
    assert select_variant(reports, "onnx", "cpu") == ("onnx", "requested")
    picked, why = select_variant(reports, "int8", "cpu")
    assert picked == NATIVE and "not servable" in why
    assert select_variant(reports, "fp16", "cpu")[0] == NATIVE  # a CUDA variant on a CPU worker
    assert select_variant({}, "onnx", "cpu")[0] == NATIVE
    slower = {"onnx": _report(True, 50.0, 100.0)}
    assert select_variant(slower, "auto", "cpu")[0] == NATIVE  # auto only takes a speed-up
    assert select_variant(reports, "torch", "cpu")[0] == NATIVE
    assert canonical_runtime("torch") == NATIVE
    with pytest.raises(ValueError, match="unknown runtime"):
        canonical_runtime("tensorrt")


def test_parity_report_and_bounds() -> None:
    native = np.array([0.1, 0.24, 0.26, 0.6, 0.9])
    variant = np.array([0.1, 0.26, 0.26, 0.6, 0.9])  # one row crosses the 0.25 cut-off
    y = np.array([0, 0, 1, 1, 1])
    parity = parity_report(native, variant, y, [0.5, 0.25, 0.25])
    assert parity["cutoffs"] == [0.25, 0.5]
    assert parity["agreement"] == pytest.approx(0.8)
    assert parity["agreement_by_cutoff"] == {"0.25": pytest.approx(0.8), "0.5": 1.0}
    assert parity["max_abs_delta"] == pytest.approx(0.02)
    assert parity["delta_roc_auc"] == pytest.approx(-1 / 12)  # one tie among 6 pairs
    assert ParityBounds(max_abs_delta=0.05, min_agreement=0.8).failures(parity) == []
    fails = ParityBounds(min_agreement=0.995, max_auc_drop=0.01).failures(parity)
    assert len(fails) == 2 and "agreement" in fails[0] and "ROC-AUC" in fails[1]
    bad = parity_report(native, np.array([np.nan, 0, 0, 0, 0]), y, [0.5])
    assert ParityBounds().failures(bad) == ["the variant returned non-finite scores"]
    assert parse_bound("int8.min_agreement=0.999") == ("int8", "min_agreement", 0.999)
    for text in ("int8=1", "int8.speed=1", "onnx.max_abs_delta=x", "onnx.max_abs_delta=nan"):
        with pytest.raises(ValueError):
            parse_bound(text)


def test_variant_names_are_checked() -> None:
    with pytest.raises(VariantError):
        variant_entries("../onnx", {}, {})
    with pytest.raises(VariantError):
        variant_entries("onnx", {"json": b""}, {})  # would collide with the report
    entries = variant_entries("onnx", {"model.onnx": b"x"}, {"servable": True})
    assert set(entries) == {"variant.onnx.model.onnx", "variant.onnx.json"}


def test_a_cuda_cast_scores_like_the_native_model(
    trained: dict[str, TrainedModel], synth_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    """The fp16/bf16 code path, run on the CPU here (CUDA only in production)."""
    _, hold = synth_split
    model = trained["torch_mlp"]
    batch = model.encoder.transform(hold)
    cast = TorchCastRuntime("bf16", model.model, device="cpu")
    delta = np.abs(cast.predict_proba(batch) - model.model.predict_proba(batch))
    assert 0 < delta.max() < 0.05
    with pytest.raises(ValueError, match="torch_mlp"):
        TorchCastRuntime("fp16", trained["logreg"].model, device="cpu")


def test_the_native_runtime_wrapper_changes_nothing(
    trained: dict[str, TrainedModel],
    registry: ModelRegistry,
    synth_split: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    _, hold = synth_split
    version = registry.register(trained["hgb"], "m")
    loaded = registry.load("m", version)
    served = load_with_runtime(registry, loaded, "native")
    assert isinstance(served, RuntimeModel) and served.score_runtime == NATIVE
    np.testing.assert_array_equal(served.score(hold), loaded.score(hold))
    assert (served.name, served.version, served.family) == ("m", version, "hgb")
