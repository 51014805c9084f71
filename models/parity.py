"""Parity of a variant runtime against the native one on a holdout, and rows/s by batch size.

Parity compares the two runtimes' probabilities on the same encoded holdout rows:

* ``max_abs_delta`` / ``mean_abs_delta``: |variant - native| over the rows;
* ``roc_auc`` of each and ``delta_roc_auc`` (variant - native) against the holdout labels;
* ``agreement``: share of rows whose decision band is the same, the bands being cut at
  ``cutoffs`` (plain numbers: the score thresholds of the decision policies in use; a score
  ``>= c`` is past cut-off ``c``), and ``agreement_by_cutoff`` per cut-off;
* ``batch_dependence`` (:func:`batch_dependence`): how much a row's score moves when it is
  scored alone rather than within the holdout batch (reported, not bounded by default).

:class:`ParityBounds` say what a variant must meet to be servable; :data:`DEFAULT_BOUNDS` are
the defaults per variant kind (configurable: :func:`parse_bound`).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from models.encoding import EncodedBatch

__all__ = [
    "BATCH_SIZES",
    "DEFAULT_BOUNDS",
    "ParityBounds",
    "batch_dependence",
    "bounds_with",
    "parity_report",
    "parse_bound",
    "rows_per_second",
    "thread_limit",
]

BATCH_SIZES = (1, 32, 500, 2000)
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ParityBounds:
    """What a variant must meet on the holdout (None: not checked)."""

    max_abs_delta: float | None = None  # largest |variant - native| score difference
    min_agreement: float | None = None  # share of rows decided alike at the cut-offs
    max_auc_drop: float | None = None  # how much lower the variant's ROC-AUC may be

    def failures(self, parity: Mapping[str, Any]) -> list[str]:
        """Why ``parity`` misses these bounds (empty: it meets them)."""
        if parity.get("max_abs_delta") is None:
            return ["the variant returned non-finite scores"]
        out = []
        delta = float(parity["max_abs_delta"])
        if self.max_abs_delta is not None and not delta <= self.max_abs_delta:
            out.append(f"max |Δscore| {delta:.3g} > bound {self.max_abs_delta:g}")
        agree = float(parity["agreement"])
        if self.min_agreement is not None and not agree >= self.min_agreement:
            out.append(f"decision agreement {agree:.4%} < bound {self.min_agreement:.4%}")
        drop = parity.get("delta_roc_auc")
        if self.max_auc_drop is not None and drop is not None and -drop > self.max_auc_drop:
            out.append(f"ROC-AUC drops by {-drop:.4f} > bound {self.max_auc_drop:g}")
        return out

    def to_dict(self) -> dict[str, float | None]:
        """JSON-compatible form."""
        return asdict(self)


DEFAULT_BOUNDS: dict[str, ParityBounds] = {
    "onnx": ParityBounds(max_abs_delta=1e-3),
    "int8": ParityBounds(min_agreement=0.995, max_auc_drop=0.005),
    "fp16": ParityBounds(max_abs_delta=1e-2, min_agreement=0.995),
    "bf16": ParityBounds(min_agreement=0.995, max_auc_drop=0.005),
}


def parse_bound(text: str) -> tuple[str, str, float]:
    """``"onnx.max_abs_delta=1e-4"`` -> ``("onnx", "max_abs_delta", 1e-4)``."""
    key, sep, value = text.partition("=")
    variant, dot, field = key.strip().partition(".")
    if not (sep and dot) or field not in ParityBounds.__dataclass_fields__:
        known = ", ".join(ParityBounds.__dataclass_fields__)
        raise ValueError(f"bad bound {text!r}: want VARIANT.FIELD=NUMBER, FIELD one of {known}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"bad bound {text!r}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"bad bound {text!r}: not finite")
    return variant, field, number


def bounds_with(
    overrides: Sequence[str] = (), base: Mapping[str, ParityBounds] | None = None
) -> dict[str, ParityBounds]:
    """:data:`DEFAULT_BOUNDS` (or ``base``) with ``VARIANT.FIELD=NUMBER`` overrides applied."""
    out = dict(DEFAULT_BOUNDS if base is None else base)
    for text in overrides:
        variant, field, number = parse_bound(text)
        out[variant] = replace(out.get(variant, ParityBounds()), **{field: number})
    return out


def _auc(y: npt.NDArray[np.int64], scores: FloatArray) -> float | None:
    if len(np.unique(y)) < 2:
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, scores))


def parity_report(
    native: FloatArray,
    variant: FloatArray,
    y: npt.NDArray[np.int64],
    cutoffs: Sequence[float],
) -> dict[str, Any]:
    """Score and decision parity of ``variant`` against ``native`` (see the module docstring)."""
    native, variant = np.asarray(native, np.float64), np.asarray(variant, np.float64)
    if native.shape != variant.shape or not len(native):
        raise ValueError(f"parity needs two equal, non-empty score arrays: {native.shape}")
    delta = np.abs(variant - native)
    cuts = sorted({float(c) for c in cutoffs})
    edges = np.asarray(cuts, dtype=np.float64)
    bands_n = np.searchsorted(edges, native, side="right")
    bands_v = np.searchsorted(edges, variant, side="right")
    finite = bool(np.all(np.isfinite(variant)))
    auc_n, auc_v = _auc(y, native), _auc(y, variant) if finite else None
    return {
        "rows": len(native),
        "finite": finite,
        "max_abs_delta": float(np.max(delta)) if finite else None,  # None: non-finite scores
        "mean_abs_delta": float(np.mean(delta)) if finite else None,
        "roc_auc_native": auc_n,
        "roc_auc": auc_v,
        "delta_roc_auc": None if auc_n is None or auc_v is None else auc_v - auc_n,
        "cutoffs": cuts,
        "agreement": float(np.mean(bands_n == bands_v)),
        "agreement_by_cutoff": {
            f"{c:g}": float(np.mean((native >= c) == (variant >= c))) for c in cuts
        },
    }


def batch_dependence(
    predict: Callable[[EncodedBatch], FloatArray], batch: EncodedBatch, rows: int = 64
) -> float | None:
    """Largest |score of a row scored alone - its score within ``batch``| over the first
    ``rows`` rows: 0 for a runtime whose scores do not depend on the other rows of a batch
    (dynamic int8 quantisation scales activations per batch, so its scores may); None when
    non-finite."""
    n = min(rows, batch.n_rows)
    together = predict(batch)[:n]
    alone = np.concatenate([predict(batch.take(np.arange(i, i + 1))) for i in range(n)])
    delta = np.abs(alone - together)
    return float(np.max(delta)) if n and np.all(np.isfinite(delta)) else None


@contextlib.contextmanager
def thread_limit(threads: int, torch_too: bool) -> Iterator[None]:
    """Native libraries (OpenMP/BLAS; torch when ``torch_too``) limited to ``threads`` for the
    block, as a worker runs them; 0 leaves them alone."""
    if threads <= 0:
        yield
        return
    from threadpoolctl import threadpool_limits

    previous = None
    if torch_too:
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        if previous is not None:
            import torch

            torch.set_num_threads(previous)


def rows_per_second(
    predict: Callable[[EncodedBatch], FloatArray],
    batch: EncodedBatch,
    sizes: Sequence[int] = BATCH_SIZES,
    min_seconds: float = 0.2,
    sync: Callable[[], None] = lambda: None,
) -> dict[str, float]:
    """Rows/s of ``predict`` per batch size (keys: the sizes as strings): batches of rows of
    ``batch`` (repeated when it is shorter), after one warm-up call; the median call time of
    as many calls as fit in ``min_seconds`` (at least 3)."""
    out: dict[str, float] = {}
    for size in sizes:
        rows = batch.take(np.arange(size) % max(batch.n_rows, 1))
        predict(rows)
        sync()
        times: list[float] = []
        started = time.perf_counter()
        while len(times) < 3 or time.perf_counter() - started < min_seconds:
            t0 = time.perf_counter()
            predict(rows)
            sync()
            times.append(time.perf_counter() - t0)
            if len(times) >= 100_000:
                break
        out[str(size)] = size / max(float(np.median(times)), 1e-9)
    return out
