"""Optimised runtime variants of a model: build each one the family allows, measure its parity
with the native runtime on a holdout and its speed, and (for a registered version) store it.

Variants: ``onnx`` (every family; :mod:`models.onnx_export`, ONNX Runtime on CPU), ``int8``
(torch_mlp: ONNX Runtime dynamic int8 quantisation of the ONNX export), ``fp16``/``bf16``
(torch_mlp on CUDA, only when a GPU is present). A variant the family cannot have is
``not_applicable``, one this host cannot build ``not_available``: neither is stored. A built
variant is stored with its report: ``servable`` when its parity meets the bounds of its kind
(:data:`models.parity.DEFAULT_BOUNDS`), ``not_servable`` when it misses them, ``error`` when it
could not be built or run (no artifact then). Workers use servable variants only.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from typing import Any

import pandas as pd

from models.data import labels
from models.encoding import EncodedBatch
from models.family import ModelFamily
from models.model import Model
from models.parity import (
    BATCH_SIZES,
    DEFAULT_BOUNDS,
    ParityBounds,
    batch_dependence,
    parity_report,
    rows_per_second,
    thread_limit,
)
from models.runtimes import NATIVE, VARIANT_KINDS, NativeRuntime, ScoreRuntime, runtime_for
from models.variants import add_variant

__all__ = [
    "OptimiseSettings",
    "Outcome",
    "optimise_model",
    "optimise_version",
]

_LIBRARIES = ("onnx", "onnxruntime", "skl2onnx", "torch", "scikit-learn", "numpy")


@dataclass(frozen=True)
class OptimiseSettings:
    """How variants are judged and timed. ``cutoffs``: the decision policies' score
    thresholds (plain numbers); ``threads``: native and ONNX Runtime threads while timing
    (the workers' default: 1)."""

    cutoffs: Sequence[float] = (0.5,)
    bounds: Mapping[str, ParityBounds] = field(default_factory=lambda: dict(DEFAULT_BOUNDS))
    variants: Sequence[str] = VARIANT_KINDS
    batch_sizes: Sequence[int] = BATCH_SIZES
    min_seconds: float = 0.2
    threads: int = 1


@dataclass
class Outcome:
    """What became of one variant: ``status`` (servable, not_servable, error, not_applicable,
    not_available), a one-line ``detail``, and for built variants the ``report`` and
    artifacts (``files``: short name -> bytes) to store."""

    variant: str
    status: str
    detail: str
    report: dict[str, Any] | None = None
    files: dict[str, bytes] = field(default_factory=dict)

    @property
    def stored(self) -> bool:
        """Whether this outcome goes into the registry (every variant that was built)."""
        return self.report is not None

    def summary(self) -> dict[str, Any]:
        """A short JSON-safe line: status, detail and the headline figures."""
        out: dict[str, Any] = {"status": self.status, "detail": self.detail}
        if self.report:
            parity = self.report.get("parity") or {}
            speed = self.report.get("speed") or {}
            out.update(
                {
                    "max_abs_delta": parity.get("max_abs_delta"),
                    "delta_roc_auc": parity.get("delta_roc_auc"),
                    "agreement": parity.get("agreement"),
                    "rows_per_s": speed.get("rows_per_s"),
                    "speedup": speed.get("speedup"),
                }
            )
        return out


class _Skip(Exception):
    """A variant this family or host cannot have (status, detail)."""

    def __init__(self, status: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status


def _library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for dist in _LIBRARIES:
        try:
            out[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _build(
    variant: str, family: ModelFamily, threads: int
) -> tuple[dict[str, bytes], ScoreRuntime, str, str]:
    """``(artifacts, runtime, device, how)`` of one variant; :class:`_Skip` when impossible."""
    from models.onnx_export import ONNX_FAMILIES, export_onnx, quantize_int8

    if variant == "onnx":
        if family.name not in ONNX_FAMILIES:
            raise _Skip("not_applicable", f"no ONNX export for {family.name}")
        onx, how = export_onnx(family)
        files = {"model.onnx": onx}
        return files, runtime_for(variant, family, files, threads), "cpu", how
    if family.name != "torch_mlp":
        raise _Skip("not_applicable", f"{variant} applies to torch_mlp only")
    if variant == "int8":
        onx, how = export_onnx(family)
        files = {"model.onnx": quantize_int8(onx)}
        how += " + onnxruntime.quantization.quantize_dynamic (int8 MatMul/Gemm weights)"
        return files, runtime_for(variant, family, files, threads), "cpu", how
    if variant in ("fp16", "bf16"):
        if not _cuda_available():
            raise _Skip("not_available", "no CUDA device on this host")
        runtime = runtime_for(variant, family, {}, threads, "cuda")
        return {}, runtime, "cuda", f"torch weights cast to {variant} on cuda at load"
    raise _Skip("not_applicable", f"unknown variant {variant}")


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def _native_speed(
    family: ModelFamily, batch: EncodedBatch, device: str, s: OptimiseSettings
) -> dict[str, float]:
    native = family if device == family.device else copy.deepcopy(family).to(device)
    with thread_limit(s.threads, family.name == "torch_mlp"):
        return rows_per_second(
            native.predict_proba,
            batch,
            s.batch_sizes,
            s.min_seconds,
            functools.partial(_sync, device),
        )


def _report(
    variant: str,
    family: ModelFamily,
    device: str,
    how: str,
    parity: dict[str, Any] | None,
    bounds: ParityBounds,
    speed: dict[str, Any] | None,
    holdout: Mapping[str, Any],
    failures: list[str],
    error: str | None = None,
) -> dict[str, Any]:
    status = "error" if error else ("not_servable" if failures else "servable")
    engine = "onnxruntime (CPUExecutionProvider)" if variant in ("onnx", "int8") else "torch"
    return {
        "status": status,
        "servable": status == "servable",
        "reasons": [error] if error else failures,
        "family": family.name,
        "runtime": variant,
        "device": device,
        "engine": engine,
        "exporter": how,
        "reason_runtime": NATIVE,  # reason codes always come from the native family
        "parity": parity,
        "bounds": bounds.to_dict(),
        "holdout": dict(holdout),
        "speed": speed,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "library_versions": _library_versions(),
    }


def optimise_model(
    model: Model,
    holdout: pd.DataFrame,
    settings: OptimiseSettings | None = None,
    holdout_info: Mapping[str, Any] | None = None,
) -> list[Outcome]:
    """Build, check and time every variant of ``settings.variants`` for ``model``.

    Parity is measured on ``holdout`` (labelled rows of the model's spec) against the native
    runtime's scores; speed is rows/s per batch size beside the native runtime's, timed in the
    same run on the variant's device.
    """
    s = settings or OptimiseSettings()
    family = model.model
    batch = model.encoder.transform(holdout)
    y = labels(holdout, model.spec)
    native_scores = NativeRuntime(family).predict_proba(batch)
    info = {"rows": len(holdout), **(holdout_info or {})}
    native_speed: dict[str, dict[str, float]] = {}
    outcomes: list[Outcome] = []
    for variant in s.variants:
        bounds = s.bounds.get(variant, ParityBounds())
        try:
            files, runtime, device, how = _build(variant, family, s.threads)
            scores = runtime.predict_proba(batch)
            parity = parity_report(native_scores, scores, y, s.cutoffs)
            parity["batch_dependence"] = batch_dependence(runtime.predict_proba, batch)
            with thread_limit(s.threads, family.name == "torch_mlp"):
                rates = rows_per_second(
                    runtime.predict_proba,
                    batch,
                    s.batch_sizes,
                    s.min_seconds,
                    functools.partial(_sync, device),
                )
        except _Skip as skip:
            outcomes.append(Outcome(variant, skip.status, str(skip)))
            continue
        except Exception as exc:  # an exporter or runtime failure: recorded, not servable
            error = f"{type(exc).__name__}: {exc}"[:500]
            report = _report(variant, family, "cpu", "", None, bounds, None, info, [], error)
            outcomes.append(Outcome(variant, "error", error, report))
            continue
        if device not in native_speed:
            native_speed[device] = _native_speed(family, batch, device, s)
        base = native_speed[device]
        speed = {
            "threads": s.threads,
            "min_seconds": s.min_seconds,
            "rows_per_s": rates,
            "native_rows_per_s": base,
            "speedup": {k: rates[k] / base[k] for k in rates if base.get(k)},
        }
        failures = bounds.failures(parity)
        report = _report(variant, family, device, how, parity, bounds, speed, info, failures)
        detail = "; ".join(failures) or "parity within bounds"
        outcomes.append(Outcome(variant, report["status"], detail, report, files))
    return outcomes


def optimise_version(
    registry: Any,
    name: str,
    ref: str | int,
    holdout: pd.DataFrame,
    settings: OptimiseSettings | None = None,
    holdout_info: Mapping[str, Any] | None = None,
) -> tuple[int, list[Outcome]]:
    """:func:`optimise_model` on a registered version (loaded on CPU), each built variant
    stored in it (:func:`models.variants.add_variant`); ``(version, outcomes)``."""
    model = registry.load(name, ref, device="cpu")
    outcomes = optimise_model(model, holdout, settings, holdout_info)
    for outcome in outcomes:
        if outcome.report is not None:
            variant, files, report = outcome.variant, outcome.files, outcome.report
            add_variant(registry, name, model.version, variant, files, report)
    return int(model.version), outcomes
