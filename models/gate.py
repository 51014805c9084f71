"""Promotion gate: a challenger replaces the champion only when it is better on the same holdout.

Rules: (0) the challenger's primary and guard metrics must all be finite: a NaN (e.g. ROC-AUC
of a single-class holdout), a missing value or ``None`` (a NaN after a JSON round-trip) is
refused, naming the metric, even without a champion; (1) no champion -> promote ("no
champion"); (2) both must have been scored on the same holdout when fingerprints are given;
(3) the primary metric must improve by more than ``margin``; (4) no guard metric may regress
by more than its tolerance (direction-aware: log_loss and brier are lower-is-better).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from models.metrics import LOWER_IS_BETTER, Metrics

__all__ = ["GateConfig", "Verdict", "evaluate_gate"]


@dataclass(frozen=True)
class GateConfig:
    """Gate settings. ``guards`` maps guard metric -> allowed regression (absolute)."""

    primary: str = "roc_auc"
    margin: float = 0.0
    guards: Mapping[str, float] = field(
        default_factory=lambda: {"pr_auc": 0.01, "brier": 0.005, "f1": 0.02}
    )

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return {"primary": self.primary, "margin": self.margin, "guards": dict(self.guards)}


@dataclass(frozen=True)
class Verdict:
    """The gate's decision and why."""

    promote: bool
    reasons: list[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form (what goes into the alias history)."""
        return {"promote": self.promote, "reasons": list(self.reasons)}


def _scalars(metrics: Metrics | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(metrics, Metrics):
        return dict(metrics.headline())
    return dict(metrics)


_MISSING = object()


def _finite(value: Any) -> bool:
    """Whether ``value`` is a finite number (None, NaN, inf and non-numbers are not)."""
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _describe(value: Any) -> str:
    """Why a metric value is unusable, in words."""
    if value is _MISSING:
        return "missing"
    if value is None:
        return "NaN (null)"
    try:
        return "NaN" if math.isnan(float(value)) else f"{float(value)} (not finite)"
    except (TypeError, ValueError):
        return f"{value!r} (not a number)"


def _improvement(name: str, challenger: float, champion: float) -> float:
    """Signed improvement: positive means the challenger is better."""
    return champion - challenger if name in LOWER_IS_BETTER else challenger - champion


def evaluate_gate(
    challenger: Metrics | Mapping[str, Any],
    champion: Metrics | Mapping[str, Any] | None,
    config: GateConfig | None = None,
) -> Verdict:
    """Decide whether ``challenger`` may replace ``champion`` (metrics on the SAME holdout).

    Metric mappings are :meth:`Metrics.headline`-style dicts; an optional
    ``holdout_fingerprint`` key in both is compared and must match.
    """
    cfg = config or GateConfig()
    ch = _scalars(challenger)
    not_finite = [
        f"challenger has no finite {name}: {name} is {_describe(ch.get(name, _MISSING))}"
        for name in dict.fromkeys((cfg.primary, *cfg.guards))
        if not _finite(ch.get(name))
    ]
    if not_finite:
        return Verdict(False, not_finite)
    if champion is None:
        return Verdict(True, ["no champion"])
    cp = _scalars(champion)
    fp_ch, fp_cp = ch.get("holdout_fingerprint"), cp.get("holdout_fingerprint")
    if fp_ch is not None and fp_cp is not None and fp_ch != fp_cp:
        return Verdict(False, ["challenger and champion were not scored on the same holdout"])
    reasons: list[str] = []
    promote = True
    for name in (cfg.primary, *cfg.guards):
        if not _finite(cp.get(name)):
            return Verdict(False, [f"champion has no finite {name}"])
    gain = _improvement(cfg.primary, float(ch[cfg.primary]), float(cp[cfg.primary]))
    if gain > cfg.margin:
        reasons.append(
            f"{cfg.primary} {float(ch[cfg.primary]):.4f} beats champion "
            f"{float(cp[cfg.primary]):.4f} by {gain:+.4f} (> margin {cfg.margin})"
        )
    else:
        promote = False
        reasons.append(
            f"{cfg.primary} {float(ch[cfg.primary]):.4f} does not beat champion "
            f"{float(cp[cfg.primary]):.4f} by more than margin {cfg.margin} ({gain:+.4f})"
        )
    for name, tolerance in cfg.guards.items():
        delta = _improvement(name, float(ch[name]), float(cp[name]))
        if delta < -tolerance:
            promote = False
            reasons.append(
                f"guard {name} regresses: {float(ch[name]):.4f} vs champion "
                f"{float(cp[name]):.4f} ({delta:+.4f}, tolerance {tolerance})"
            )
        else:
            reasons.append(f"guard {name} ok ({delta:+.4f}, tolerance {tolerance})")
    return Verdict(promote, reasons)
