"""Binary-classification metrics (scikit-learn) in a typed, JSON-serialisable dataclass."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    log_loss,
    roc_auc_score,
)

__all__ = [
    "LOWER_IS_BETTER",
    "ConfusionCounts",
    "Metrics",
    "ThresholdMetrics",
    "compute_metrics",
    "threshold_metrics",
]

#: Metrics where a smaller value is better (the gate flips its comparison for these).
LOWER_IS_BETTER: frozenset[str] = frozenset({"log_loss", "brier"})


@dataclass(frozen=True)
class ConfusionCounts:
    """Confusion matrix counts (positive class = 1)."""

    tn: int
    fp: int
    fn: int
    tp: int


@dataclass(frozen=True)
class ThresholdMetrics:
    """Metrics of hard decisions ``proba >= threshold``."""

    threshold: float
    accuracy: float
    precision: float
    recall: float
    f1: float
    confusion: ConfusionCounts


@dataclass(frozen=True)
class Metrics:
    """All metrics of one scored set. ``to_dict`` is flat-ish and JSON-safe (NaN -> None)."""

    n: int
    positive_rate: float
    roc_auc: float
    pr_auc: float
    log_loss: float
    brier: float
    at_threshold: ThresholdMetrics
    at_half: ThresholdMetrics
    calibration: dict[str, list[float]] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        """Accuracy at the configured threshold."""
        return self.at_threshold.accuracy

    @property
    def precision(self) -> float:
        """Precision at the configured threshold."""
        return self.at_threshold.precision

    @property
    def recall(self) -> float:
        """Recall at the configured threshold."""
        return self.at_threshold.recall

    @property
    def f1(self) -> float:
        """F1 at the configured threshold."""
        return self.at_threshold.f1

    def headline(self) -> dict[str, float]:
        """The scalar metrics by name (what gates and comparison tables use)."""
        return {
            "roc_auc": self.roc_auc,
            "pr_auc": self.pr_auc,
            "log_loss": self.log_loss,
            "brier": self.brier,
            "accuracy": self.accuracy,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "threshold": self.at_threshold.threshold,
            "accuracy@0.5": self.at_half.accuracy,
            "precision@0.5": self.at_half.precision,
            "recall@0.5": self.at_half.recall,
            "f1@0.5": self.at_half.f1,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dict (NaN -> None); inverse of :meth:`from_dict`."""
        out: dict[str, Any] = _nan_to_none(asdict(self))
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Metrics:
        """Rebuild from :meth:`to_dict` output."""

        def tm(d: dict[str, Any]) -> ThresholdMetrics:
            return ThresholdMetrics(
                threshold=_f(d["threshold"]),
                accuracy=_f(d["accuracy"]),
                precision=_f(d["precision"]),
                recall=_f(d["recall"]),
                f1=_f(d["f1"]),
                confusion=ConfusionCounts(**d["confusion"]),
            )

        return cls(
            n=int(data["n"]),
            positive_rate=_f(data["positive_rate"]),
            roc_auc=_f(data["roc_auc"]),
            pr_auc=_f(data["pr_auc"]),
            log_loss=_f(data["log_loss"]),
            brier=_f(data["brier"]),
            at_threshold=tm(data["at_threshold"]),
            at_half=tm(data["at_half"]),
            calibration={k: [float(x) for x in v] for k, v in data["calibration"].items()},
        )


def _f(value: Any) -> float:
    return math.nan if value is None else float(value)


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nan_to_none(v) for v in value]
    return value


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


def threshold_metrics(
    y_true: npt.NDArray[np.int64], proba: npt.NDArray[np.float64], threshold: float
) -> ThresholdMetrics:
    """Accuracy, precision, recall, F1 and confusion counts of ``proba >= threshold``.

    Precision (recall) is 0.0 when nothing is predicted (is) positive, like scikit-learn's
    ``zero_division=0``.
    """
    pred = (proba >= threshold).astype(np.int64)
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(y_true, pred, labels=[0, 1]).ravel())
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    return ThresholdMetrics(
        threshold=float(threshold),
        accuracy=_ratio(tp + tn, len(pred)),
        precision=precision,
        recall=recall,
        f1=f1,
        confusion=ConfusionCounts(tn=tn, fp=fp, fn=fn, tp=tp),
    )


def compute_metrics(
    y_true: npt.ArrayLike, proba: npt.ArrayLike, threshold: float = 0.5, n_bins: int = 10
) -> Metrics:
    """All metrics for labels ``y_true`` (1 = positive) and positive-class probabilities.

    Hard-decision metrics (``at_threshold``) count ``proba >= threshold`` as positive
    (``threshold`` in [0, 1], else ``ValueError``); ``at_half`` is always at 0.5. Ranking
    metrics (ROC-AUC, PR-AUC = average precision) are NaN when only one class is present. The
    calibration curve uses ``n_bins`` uniform bins (empty bins dropped).
    """
    if not 0.0 <= threshold <= 1.0:  # NaN fails too
        raise ValueError(f"threshold {threshold!r} must be a number in [0, 1]")
    y = np.asarray(y_true).astype(np.int64)
    p = np.clip(np.asarray(proba, dtype=np.float64), 0.0, 1.0)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"y_true {y.shape} and proba {p.shape} must be 1-D of equal length")
    if y.size == 0:
        raise ValueError("cannot compute metrics of an empty set")
    both = np.unique(y).size == 2
    prob_true, prob_pred = (
        calibration_curve(y, p, n_bins=n_bins, strategy="uniform") if both else ([], [])
    )
    return Metrics(
        n=int(y.size),
        positive_rate=float(y.mean()),
        roc_auc=float(roc_auc_score(y, p)) if both else math.nan,
        pr_auc=float(average_precision_score(y, p)) if both else math.nan,
        log_loss=float(log_loss(y, p, labels=[0, 1])),
        brier=float(brier_score_loss(y, p)),
        at_threshold=threshold_metrics(y, p, threshold),
        at_half=threshold_metrics(y, p, 0.5),
        calibration={
            "prob_true": [float(v) for v in prob_true],
            "prob_pred": [float(v) for v in prob_pred],
        },
    )
