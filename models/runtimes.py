"""Score runtimes: the native model, its ONNX / int8 variants on ONNX Runtime (CPU), and torch
casts to fp16/bf16 on CUDA; and the model that scores with one and explains with the native.

Every runtime maps an :class:`~models.encoding.EncodedBatch` (the one encoding, made by the
version's encoder) to positive-class probabilities, float64, shape (n,). Reason codes always
come from the native family (gradient methods need torch; tree paths and linear terms need
the fitted estimator), so a :class:`RuntimeModel` records both: ``score_runtime`` (who made the
scores) and ``reason_runtime`` (always ``native``).

Choosing (:func:`select_variant`): ``native`` (alias ``torch``) is the registered model itself;
``onnx``, ``int8``, ``fp16``, ``bf16`` name a variant, used only when its report says servable
and it runs on the worker's device kind; ``auto`` takes the servable variant with the most
rows/s at the reference batch size (or the nearest measured below it), if it beat the native
runtime measured in the same run.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

from models.encoding import EncodedBatch
from models.family import ModelFamily
from models.model import ScoredColumns
from models.registry import LoadedModel
from models.variants import reports_from_files, variant_files

__all__ = [
    "ALIASES",
    "NATIVE",
    "REFERENCE_BATCH",
    "RUNTIME_CHOICES",
    "VARIANT_KINDS",
    "NativeRuntime",
    "OnnxRuntime",
    "RuntimeModel",
    "ScoreRuntime",
    "TorchCastRuntime",
    "canonical_runtime",
    "device_kind",
    "load_with_runtime",
    "runtime_for",
    "select_variant",
]

log = logging.getLogger(__name__)

NATIVE = "native"
VARIANT_KINDS = ("onnx", "int8", "fp16", "bf16")
ALIASES = {"torch": NATIVE}  # for scikit-learn families, "torch" means their native model too
RUNTIME_CHOICES = ("auto", NATIVE, *ALIASES, *VARIANT_KINDS)
REFERENCE_BATCH = 500  # the workers' default max_batch_size: what ``auto`` compares at
_CAST_DTYPES = {"fp16": "float16", "bf16": "bfloat16"}
FloatArray = npt.NDArray[np.float64]


class ScoreRuntime(Protocol):
    """Scores encoded batches: positive-class probability per row, float64 (n,)."""

    name: str
    device: str

    def predict_proba(self, batch: EncodedBatch) -> FloatArray:
        """Probability per row."""
        ...


def canonical_runtime(name: str) -> str:
    """``name`` with aliases resolved (``torch`` -> ``native``); ValueError if unknown."""
    if name not in RUNTIME_CHOICES:
        raise ValueError(f"unknown runtime {name!r}; choose from {list(RUNTIME_CHOICES)}")
    return ALIASES.get(name, name)


def device_kind(device: str) -> str:
    """``cuda`` for any CUDA device string, else ``cpu``."""
    return "cuda" if str(device).startswith("cuda") else "cpu"


def _sigmoid(logits: npt.NDArray[Any]) -> FloatArray:
    from scipy.special import expit

    return np.asarray(expit(np.asarray(logits, dtype=np.float64)), dtype=np.float64)


class NativeRuntime:
    """The registered family itself (torch or scikit-learn)."""

    name = NATIVE

    def __init__(self, family: ModelFamily) -> None:
        self.family = family
        self.device = family.device

    def predict_proba(self, batch: EncodedBatch) -> FloatArray:
        """The family's own probabilities."""
        return self.family.predict_proba(batch)


class OnnxRuntime:
    """An exported model (``onnx`` or ``int8``) on ONNX Runtime's CPU provider."""

    device = "cpu"

    def __init__(self, name: str, model: bytes, family: ModelFamily, threads: int = 1) -> None:
        import onnxruntime as ort

        self.name = name
        self.family_name = family.name
        self.encoder = family.encoder
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(0, int(threads))  # 0: ONNX Runtime's default
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # errors only
        self.session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}

    def _feeds(self, batch: EncodedBatch) -> dict[str, npt.NDArray[Any]]:
        if self.family_name == "torch_mlp":
            feeds: dict[str, npt.NDArray[Any]] = {
                "numeric": np.ascontiguousarray(batch.numeric, dtype=np.float32),
                "categorical": np.ascontiguousarray(batch.categorical, dtype=np.int64),
            }
            return {k: v for k, v in feeds.items() if k in self.inputs}  # unused: dropped
        if self.family_name == "logreg":
            return {"X": self.encoder.design_matrix(batch)[0]}
        return {"X": np.hstack([batch.numeric, batch.categorical]).astype(np.float64)}

    def predict_proba(self, batch: EncodedBatch) -> FloatArray:
        """Probabilities from the session's output (sigmoid of the logit for torch)."""
        if batch.n_rows == 0:
            return np.zeros(0, dtype=np.float64)
        out = self.session.run(None, self._feeds(batch))
        if self.family_name == "torch_mlp":
            return _sigmoid(out[0])
        if self.family_name == "logreg":
            return np.asarray(out[1][:, 1], dtype=np.float64)
        return np.asarray(out[0], dtype=np.float64).reshape(-1)


class TorchCastRuntime:
    """The native torch net cast to float16 / bfloat16 on a CUDA device (a recipe: no files)."""

    def __init__(self, name: str, family: ModelFamily, device: str = "cuda") -> None:
        import torch

        net = getattr(family, "net", None)
        if family.name != "torch_mlp" or net is None:
            raise ValueError(f"{name}: only a fitted torch_mlp can be cast")
        self.name = name
        self.device = device
        self.dtype = getattr(torch, _CAST_DTYPES[name])
        self.net = copy.deepcopy(net).to(device=device, dtype=self.dtype).eval()

    def predict_proba(self, batch: EncodedBatch) -> FloatArray:
        """Logits computed in the cast dtype; the sigmoid in float64 on the host."""
        import torch

        if batch.n_rows == 0:
            return np.zeros(0, dtype=np.float64)
        num = torch.from_numpy(np.ascontiguousarray(batch.numeric)).to(self.device, self.dtype)
        cat = torch.from_numpy(np.ascontiguousarray(batch.categorical)).to(self.device)
        with torch.no_grad():
            logits = self.net(num, cat).float().cpu().numpy()
        return _sigmoid(logits)


def runtime_for(
    variant: str,
    family: ModelFamily,
    files: Mapping[str, bytes],
    threads: int = 1,
    device: str | None = None,
) -> ScoreRuntime:
    """Build the runtime of ``variant`` from its artifacts (``files``: short name -> bytes)."""
    if variant in ("onnx", "int8"):
        return OnnxRuntime(variant, files["model.onnx"], family, threads)
    if variant in _CAST_DTYPES:
        return TorchCastRuntime(variant, family, device or "cuda")
    if variant == NATIVE:
        return NativeRuntime(family)
    raise ValueError(f"unknown variant {variant!r}")


def _speed_at(report: Mapping[str, Any], key: str, batch: int) -> float | None:
    """Rows/s at ``batch``, else at the largest measured batch below it (else the smallest)."""
    rates = (report.get("speed") or {}).get(key) or {}
    sizes = sorted(int(k) for k in rates if str(k).isdigit())
    if not sizes:
        return None
    size = max((k for k in sizes if k <= batch), default=sizes[0])
    value = rates.get(str(size))
    return float(value) if isinstance(value, int | float) else None


def select_variant(
    reports: Mapping[str, Mapping[str, Any]],
    requested: str,
    device: str,
    batch: int = REFERENCE_BATCH,
) -> tuple[str, str]:
    """``(runtime to use, why)`` for a ``requested`` runtime on a model on ``device``.

    A named variant is used only if its report says servable and its device kind is the
    model's; otherwise (and for ``native``) the native runtime. ``auto``: the servable variant
    on this device kind with the most rows/s at ``batch``, if faster than the native runtime
    measured in the same run; else native.
    """
    choice = canonical_runtime(requested)
    kind = device_kind(device)
    if choice == NATIVE:
        return NATIVE, "native runtime requested"

    def usable(name: str) -> str | None:
        report = reports.get(name)
        if report is None:
            return f"no {name} variant"
        if not report.get("servable"):
            return f"{name} variant is not servable ({report.get('status', '?')})"
        if report.get("device") != kind:
            return f"{name} variant runs on {report.get('device')}, the model on {kind}"
        return None

    if choice != "auto":
        problem = usable(choice)
        return (NATIVE, f"{problem}: native runtime used") if problem else (choice, "requested")
    best, best_rate = NATIVE, 0.0
    for name in sorted(reports):
        rate = _speed_at(reports[name], "rows_per_s", batch)
        native = _speed_at(reports[name], "native_rows_per_s", batch)
        if usable(name) or rate is None or native is None or rate <= native:
            continue
        if rate > best_rate:
            best, best_rate = name, rate
    if best == NATIVE:
        return NATIVE, "auto: no servable variant faster than native on this device"
    return best, f"auto: fastest servable variant at batch {batch} ({best_rate:,.0f} rows/s)"


@dataclass
class RuntimeModel(LoadedModel):
    """A registry model whose scores come from ``runtime`` and reasons from the native family.

    Same interface as :class:`~models.model.Model`; ``score_runtime``/``reason_runtime`` say
    which runtime produced what, ``runtime_note`` why this runtime was chosen.
    """

    runtime: ScoreRuntime | None = None
    score_runtime: str = NATIVE
    reason_runtime: str = NATIVE
    runtime_note: str = ""

    @classmethod
    def wrap(cls, model: LoadedModel, runtime: ScoreRuntime | None, note: str = "") -> RuntimeModel:
        """``model`` scoring with ``runtime`` (None: the native family)."""
        base = {f.name: getattr(model, f.name) for f in dataclasses.fields(LoadedModel)}
        name = runtime.name if runtime is not None else NATIVE
        return cls(**base, runtime=runtime, score_runtime=name, runtime_note=note)

    def _proba(self, batch: EncodedBatch) -> FloatArray:
        if self.runtime is None:
            return self.model.predict_proba(batch)
        return self.runtime.predict_proba(batch)

    def score(self, df: pd.DataFrame) -> FloatArray:
        """Positive-class probability per row of a raw frame (by ``score_runtime``)."""
        return self._proba(self.encoder.transform(df))

    def score_explain(self, df: pd.DataFrame) -> tuple[FloatArray, FloatArray]:
        """Scores by ``score_runtime``, contributions by the native family, one encoding."""
        batch = self.encoder.transform(df)
        return self._proba(batch), self.model.contributions(batch)

    def score_columns(self, features: Mapping[str, Sequence[Any]], n_rows: int) -> FloatArray:
        """Positive-class probability per row of per-feature value lists."""
        return self._proba(self.encoder.transform_columns(features, n_rows))

    def score_with_explainer(
        self, features: Mapping[str, Sequence[Any]], n_rows: int, method: str | None = None
    ) -> ScoredColumns:
        """Scores by ``score_runtime`` now, native contributions later (one encoding)."""
        batch = self.encoder.transform_columns(features, n_rows)
        return ScoredColumns(self._proba(batch), batch, self.model, method)


def load_with_runtime(
    registry: Any,
    model: LoadedModel,
    requested: str,
    threads: int = 1,
    batch: int = REFERENCE_BATCH,
) -> RuntimeModel:
    """``model`` (loaded from ``registry``) scoring with the runtime ``requested`` picks.

    The variants' reports and artifacts are read from the version's verified files (signature
    and checksums, :meth:`ModelRegistry.verify`). A requested variant that cannot be used
    falls back to the native runtime, with the reason in ``runtime_note`` and the log.
    """
    choice = canonical_runtime(requested)
    if choice == NATIVE:
        return RuntimeModel.wrap(model, None, "native runtime requested")
    files = registry.verify(model.name, model.version)
    reports = reports_from_files(files)
    picked, why = select_variant(reports, choice, model.device, batch)
    if picked == NATIVE:
        if choice != "auto":
            log.warning("%s v%s: %s", model.name, model.version, why)
        return RuntimeModel.wrap(model, None, why)
    artifacts = variant_files(files, reports[picked])
    runtime = runtime_for(picked, model.model, artifacts, threads, model.device)
    return RuntimeModel.wrap(model, runtime, why)
