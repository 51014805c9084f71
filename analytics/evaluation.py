"""Quality of live decisions: metrics per model version and arm, decision rates, drift, trigger.

Pure functions on DataFrames (the store's :func:`~storage.store.decisions_with_outcomes`
and feature frames); the metric maths is :func:`models.metrics.compute_metrics`.

Drift is the population stability index per feature,
``PSI = sum((a - e) * ln(a / e))`` over bins, with ``e``/``a`` the expected (training) and actual
(recent) shares. Numeric features use quantile bins of the training data (missing values get
their own bin); categorical and boolean features use their categories (unseen ones pool into
``<other>``). Rule of thumb: < 0.1 stable, 0.1-0.25 moderate, > 0.25 a real shift.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from models.metrics import compute_metrics
from models.spec import FeatureSpec

__all__ = [
    "GROUP_KEYS",
    "QUALITY_METRICS",
    "TriggerVerdict",
    "decision_rates",
    "drift_table",
    "psi_categorical",
    "psi_numeric",
    "quality_table",
    "retrain_trigger",
]

#: Quality is reported per (model_version, arm).
GROUP_KEYS: tuple[str, str] = ("model_version", "arm")
#: The :class:`~models.metrics.Metrics` attributes a quality table reports, in column order.
QUALITY_METRICS = ("positive_rate", "accuracy", "precision", "recall", "f1", "roc_auc")
_EPS = 1e-4  # floor for empty bins so the log stays finite
_MISSING = "<missing>"
_OTHER = "<other>"


def _groups(frame: pd.DataFrame) -> list[tuple[tuple[Any, ...], pd.DataFrame]]:
    keyed = frame.assign(
        model_version=frame["model_version"]
        .astype("object")
        .where(frame["model_version"].notna(), "none")
    )
    return [
        (key if isinstance(key, tuple) else (key,), part)
        for key, part in keyed.groupby(list(GROUP_KEYS), sort=True, dropna=False)
    ]


def quality_table(
    frame: pd.DataFrame, positive: str, threshold: float = 0.5, min_labelled: int = 1
) -> pd.DataFrame:
    """Accuracy, precision, recall, F1 and ROC-AUC per (model_version, arm).

    ``frame`` has ``model_version``, ``arm``, ``score`` and ``label`` (None: no outcome yet).
    A decision counts when it has a label and a score (the model was available); the positive
    class is ``label == positive`` and the prediction is ``score >= threshold``. Groups with
    fewer than ``min_labelled`` such rows get NaN metrics. ``roc_auc`` is NaN when the group
    holds one class only.
    """
    rows = []
    for key, part in _groups(frame):
        usable = part[part["label"].notna() & part["score"].notna()]
        row: dict[str, Any] = dict(zip(GROUP_KEYS, key, strict=True))
        row.update({"decisions": len(part), "labelled": len(usable)})
        if len(usable) >= max(min_labelled, 1):
            y = (usable["label"].astype(str) == str(positive)).to_numpy(np.int64)
            m = compute_metrics(y, usable["score"].to_numpy(np.float64), threshold)
            row.update({name: getattr(m, name) for name in QUALITY_METRICS})
        else:
            row.update(dict.fromkeys(QUALITY_METRICS, math.nan))
        rows.append(row)
    return pd.DataFrame(rows, columns=[*GROUP_KEYS, "decisions", "labelled", *QUALITY_METRICS])


def decision_rates(
    frame: pd.DataFrame, names: tuple[str, ...] = ("approve", "review", "decline")
) -> pd.DataFrame:
    """Share of each decision per (model_version, arm): ``<name>_rate`` columns and ``n``.

    Decisions outside ``names`` are counted in ``other_rate``.
    """
    rows = []
    for key, part in _groups(frame):
        row: dict[str, Any] = dict(zip(GROUP_KEYS, key, strict=True))
        n = len(part)
        row["n"] = n
        counts = part["decision"].value_counts()
        for name in names:
            row[f"{name}_rate"] = float(counts.get(name, 0)) / n if n else math.nan
        other = int(counts[~counts.index.isin(names)].sum())
        row["other_rate"] = other / n if n else math.nan
        rows.append(row)
    columns = [*GROUP_KEYS, "n", *(f"{name}_rate" for name in names), "other_rate"]
    return pd.DataFrame(rows, columns=columns)


def _psi(expected: np.ndarray[Any, Any], actual: np.ndarray[Any, Any]) -> float:
    e = np.maximum(expected / max(expected.sum(), 1), _EPS)
    a = np.maximum(actual / max(actual.sum(), 1), _EPS)
    return float(np.sum((a - e) * np.log(a / e)))


def psi_numeric(expected: pd.Series, actual: pd.Series, bins: int = 10) -> float:
    """PSI of a numeric feature: quantile bins of ``expected``; missing values are one bin."""
    exp = pd.to_numeric(expected, errors="coerce")
    act = pd.to_numeric(actual, errors="coerce")
    finite = exp.dropna().to_numpy(np.float64)
    if finite.size == 0:
        edges = np.array([-np.inf, np.inf])
    else:
        inner = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]))
        edges = np.concatenate([[-np.inf], inner, [np.inf]])

    def counts(values: pd.Series) -> np.ndarray[Any, Any]:
        present = values.dropna().to_numpy(np.float64)
        hist, _ = np.histogram(present, bins=edges)
        return np.append(hist, values.isna().sum()).astype(np.float64)

    return _psi(counts(exp), counts(act))


def psi_categorical(expected: pd.Series, actual: pd.Series) -> float:
    """PSI of a categorical feature over the categories of ``expected`` (+ missing, other)."""
    exp = expected.astype("object").where(expected.notna(), _MISSING).astype(str)
    act = actual.astype("object").where(actual.notna(), _MISSING).astype(str)
    known = sorted(set(exp))
    act = act.where(act.isin(known), _OTHER)
    cats = [*known, _OTHER]
    e = exp.value_counts().reindex(cats, fill_value=0).to_numpy(np.float64)
    a = act.value_counts().reindex(cats, fill_value=0).to_numpy(np.float64)
    return _psi(e, a)


def drift_table(
    train: pd.DataFrame, recent: pd.DataFrame, spec: FeatureSpec, bins: int = 10
) -> pd.DataFrame:
    """PSI of every spec feature between ``train`` and ``recent`` (sorted, worst first).

    Columns: ``feature``, ``type``, ``psi``, ``n_train``, ``n_recent``. A feature absent from
    ``recent`` counts as all-missing there.
    """
    rows = []
    for col in spec.columns:
        exp = train[col.name] if col.name in train else pd.Series([None] * len(train))
        act = recent[col.name] if col.name in recent else pd.Series([None] * len(recent))
        numeric = col.type == "numeric"
        value = psi_numeric(exp, act, bins) if numeric else psi_categorical(exp, act)
        rows.append(
            {
                "feature": col.name,
                "type": col.type,
                "psi": value,
                "n_train": len(exp),
                "n_recent": len(act),
            }
        )
    table = pd.DataFrame(rows, columns=["feature", "type", "psi", "n_train", "n_recent"])
    return table.sort_values("psi", ascending=False, kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class TriggerVerdict:
    """Whether live quality asks for a retrain, and why (``reasons`` are readable sentences)."""

    retrain: bool
    reasons: list[str] = field(default_factory=list)
    worst_f1: float | None = None
    worst_psi: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dict."""
        return asdict(self)


def retrain_trigger(
    quality: pd.DataFrame,
    drift: pd.DataFrame,
    f1_floor: float = 0.5,
    psi_limit: float = 0.25,
    min_labelled: int = 50,
) -> TriggerVerdict:
    """Retrain when a champion-arm F1 (with at least ``min_labelled`` labelled decisions) falls
    below ``f1_floor``, or any feature's PSI exceeds ``psi_limit``."""
    reasons: list[str] = []
    worst_f1: float | None = None
    if len(quality):
        live = quality[(quality["arm"] == "champion") & (quality["labelled"] >= min_labelled)]
        live = live[live["f1"].notna()]
        if len(live):
            worst = live.iloc[int(np.argmin(live["f1"].to_numpy(np.float64)))]
            worst_f1 = float(worst["f1"])
            if worst_f1 < f1_floor:
                reasons.append(
                    f"F1 {worst_f1:.3f} of model v{worst['model_version']} ({worst['arm']}, "
                    f"{int(worst['labelled'])} labelled) is below the floor {f1_floor:.3f}"
                )
    worst_psi: float | None = None
    if len(drift) and drift["psi"].notna().any():
        worst_psi = float(np.nanmax(drift["psi"].to_numpy(np.float64)))
        drifted = drift[drift["psi"] > psi_limit]
        for _, row in drifted.iterrows():
            reasons.append(
                f"feature {row['feature']} drifted: PSI {float(row['psi']):.3f} > {psi_limit:.3f}"
            )
    return TriggerVerdict(bool(reasons), reasons, worst_f1, worst_psi)
