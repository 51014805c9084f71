"""The model evaluation report: champion vs challenger on labelled decisions.

:func:`evaluation_tables` computes the tables behind every chart (metrics, confusion, ROC, PR,
calibration, cost cut-offs) per model; :func:`build_evaluation_report` turns them, the feature
importance and the promotion verdict into ``evaluation.html`` plus CSV and Parquet exports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.metrics import precision_recall_curve, roc_curve

from analytics.evaluation import QUALITY_METRICS
from analytics.reports import charts
from analytics.reports.common import fmt_number
from analytics.reports.render import Callout, Figure, Report, Section, Table, write_report
from decisioning.thresholds import Costs, Cutoffs, optimal_cutoffs
from models.metrics import Metrics, compute_metrics

__all__ = ["DEFAULT_COSTS", "build_evaluation_report", "evaluation_tables"]

#: Costs of the expected-value curve when the caller gives none (per applicant, one unit).
DEFAULT_COSTS = Costs(gain_good_approved=1.0, loss_bad_approved=5.0, review_cost=0.3)
_CURVE_POINTS = 200
_NO_SCORES = "No labelled, scored decisions in this window."

# Column order of each exported table (also the header of an empty one).
_METRIC_COLUMNS = ("model", "n", *QUALITY_METRICS, "pr_auc", "brier")
_CONFUSION_COLUMNS = ("model", "tn", "fp", "fn", "tp")
_ROC_COLUMNS = ("model", "fpr", "tpr", "threshold")
_PR_COLUMNS = ("model", "recall", "precision", "threshold")
_CALIBRATION_COLUMNS = ("model", "bin", "mean_score", "observed_rate", "n")
_CUTOFF_COLUMNS = (
    "model",
    "approve_below",
    "decline_from",
    "expected_value",
    "approve_rate",
    "review_rate",
    "decline_rate",
    "single_cut_threshold",
    "single_cut_value",
)
_VALUE_CURVE_COLUMNS = (
    "model",
    "threshold",
    "below_rate",
    "value_single_cut",
    "value_vary_t1",
    "value_vary_t2",
)


# ------------------------------------------------------------------------------ tables


def _thin(frame: pd.DataFrame, points: int = _CURVE_POINTS) -> pd.DataFrame:
    """At most ``points`` evenly spaced rows of a curve (first and last kept)."""
    if len(frame) <= points:
        return frame
    idx = np.unique(np.linspace(0, len(frame) - 1, points).round().astype(int))
    return frame.iloc[idx]


def _concat(frames: list[pd.DataFrame], columns: Sequence[str]) -> pd.DataFrame:
    """The per-model frames stacked, or an empty frame with ``columns`` when there are none."""
    if not frames:
        return pd.DataFrame(columns=list(columns))
    return pd.concat(frames, ignore_index=True)


def _metrics_row(model: Any, m: Metrics) -> dict[str, Any]:
    return {"model": model, "n": m.n} | {name: getattr(m, name) for name in _METRIC_COLUMNS[2:]}


def _confusion_row(model: Any, m: Metrics) -> dict[str, Any]:
    c = m.at_threshold.confusion
    return {"model": model, "tn": c.tn, "fp": c.fp, "fn": c.fn, "tp": c.tp}


def _roc_points(model: Any, y: npt.NDArray[np.int64], p: npt.NDArray[np.float64]) -> pd.DataFrame:
    fpr, tpr, thr = roc_curve(y, p)
    return _thin(pd.DataFrame({"model": model, "fpr": fpr, "tpr": tpr, "threshold": thr}))


def _pr_points(model: Any, y: npt.NDArray[np.int64], p: npt.NDArray[np.float64]) -> pd.DataFrame:
    prec, rec, thr = precision_recall_curve(y, p)
    # sklearn lists points by rising threshold; reversed they run by rising recall
    points = pd.DataFrame(
        {"model": model, "recall": rec[:-1], "precision": prec[:-1], "threshold": thr}
    )
    return _thin(points.iloc[::-1])


def _calibration_bins(
    model: Any, y: npt.NDArray[np.int64], p: npt.NDArray[np.float64]
) -> pd.DataFrame:
    """Mean score vs observed positive rate in ten equal-width score bins."""
    bins = np.clip((p * 10).astype(int), 0, 9)
    grouped = pd.DataFrame({"bin": bins, "y": y, "p": p}).groupby("bin")
    cal = grouped.agg(mean_score=("p", "mean"), observed_rate=("y", "mean"), n=("y", "size"))
    cal = cal.reset_index()
    cal["bin"] = cal["bin"].map(lambda b: f"{b / 10:.1f}-{(b + 1) / 10:.1f}")
    cal.insert(0, "model", model)
    return cal


def _cutoff_row(model: Any, cut: Cutoffs) -> dict[str, Any]:
    return {"model": model} | {name: getattr(cut, name) for name in _CUTOFF_COLUMNS[1:]}


def _value_points(model: Any, cut: Cutoffs) -> pd.DataFrame:
    curve = _thin(cut.curve.reset_index(drop=True)).copy()
    curve.insert(0, "model", model)
    return curve


def evaluation_tables(
    scored: pd.DataFrame, threshold: float = 0.5, costs: Costs | None = None
) -> dict[str, pd.DataFrame]:
    """Metric, confusion, ROC, PR, calibration and cost-curve tables per ``model``.

    ``scored`` has ``model`` (a display name, e.g. ``champion v3``), ``y`` (1 = positive class)
    and ``score`` (positive-class probability). Models with one class only get metrics but no
    curves. Returns frames keyed ``metrics confusion roc pr calibration cutoffs value_curve``.
    """
    costs = costs or DEFAULT_COSTS
    metrics: list[dict[str, Any]] = []
    confusion: list[dict[str, Any]] = []
    cutoffs: list[dict[str, Any]] = []
    roc: list[pd.DataFrame] = []
    pr: list[pd.DataFrame] = []
    calib: list[pd.DataFrame] = []
    value: list[pd.DataFrame] = []
    usable = scored.dropna(subset=["y", "score"])
    for model in pd.unique(usable["model"]):
        part = usable[usable["model"] == model]
        y = part["y"].to_numpy(np.int64)
        p = np.clip(part["score"].to_numpy(np.float64), 0.0, 1.0)
        m = compute_metrics(y, p, threshold)
        metrics.append(_metrics_row(model, m))
        confusion.append(_confusion_row(model, m))
        if np.unique(y).size < 2:
            continue
        roc.append(_roc_points(model, y, p))
        pr.append(_pr_points(model, y, p))
        calib.append(_calibration_bins(model, y, p))
        cut = optimal_cutoffs(y, p, costs, positive_label=1)
        cutoffs.append(_cutoff_row(model, cut))
        value.append(_value_points(model, cut))
    return {
        "metrics": pd.DataFrame(metrics, columns=list(_METRIC_COLUMNS)),
        "confusion": pd.DataFrame(confusion, columns=list(_CONFUSION_COLUMNS)),
        "roc": _concat(roc, _ROC_COLUMNS),
        "pr": _concat(pr, _PR_COLUMNS),
        "calibration": _concat(calib, _CALIBRATION_COLUMNS),
        "cutoffs": pd.DataFrame(cutoffs, columns=list(_CUTOFF_COLUMNS)),
        "value_curve": _concat(value, _VALUE_CURVE_COLUMNS),
    }


# ------------------------------------------------------------------------------ sections


def _evaluation_facts(metrics: pd.DataFrame, threshold: float) -> list[tuple[str, str]]:
    return [
        ("labelled decisions", f"{int(metrics['n'].sum()):,}"),
        ("models compared", str(len(metrics))),
        ("best ROC-AUC", fmt_number(metrics["roc_auc"].max())),
        ("cut-off for hard labels", f"{threshold:.2f}"),
    ]


def _metrics_section(metrics: pd.DataFrame, threshold: float, pos: str) -> Section:
    s = Section(
        "Champion vs challenger",
        f"one row per model; higher is better for every column except brier. Hard labels use "
        f"score ≥ {threshold:.2f} as '{pos}'. ROC-AUC and PR-AUC judge the ranking itself.",
        tables=[Table("metrics", "Metrics per model", metrics, percent=("positive_rate",))],
    )
    if not len(metrics):
        s.empty = _NO_SCORES
    return s


def _confusion_section(
    confusion: pd.DataFrame, has_scores: bool, threshold: float, class_names: tuple[str, str]
) -> Section:
    neg, pos = class_names
    s = Section(
        "Confusion matrices",
        f"rows are what happened, columns what the model said at cut-off {threshold:.2f}; the "
        f"diagonal is right, 'predicted {neg}' for an actual '{pos}' is a missed case.",
        tables=[Table("confusion", "Counts per model", confusion)],
    )
    if has_scores:
        chart = charts.confusion_chart(confusion, class_names)
        s.figures.append(Figure(chart, "Confusion matrix per model"))
    else:
        s.empty = _NO_SCORES
    return s


def _curves_section(roc: pd.DataFrame, pr: pd.DataFrame) -> Section:
    s = Section(
        "ROC and precision-recall curves",
        "the further a ROC curve bows to the top-left (and a PR curve to the top-right), the "
        "better the model separates the classes at every cut-off.",
        tables=[
            Table("roc", "ROC curve points", roc, show=False),
            Table("pr", "Precision-recall curve points", pr, show=False),
        ],
    )
    if not len(roc):
        s.empty = "Curves need labelled decisions of both classes."
        return s
    roc_chart = charts.curve_chart(
        roc, "fpr", "tpr", "ROC curve", "false positive rate", "true positive rate", True
    )
    pr_chart = charts.curve_chart(
        pr, "recall", "precision", "Precision-recall curve", "recall", "precision", False
    )
    s.figures += [Figure(roc_chart, "ROC curves"), Figure(pr_chart, "Precision-recall curves")]
    return s


def _calibration_section(calibration: pd.DataFrame) -> Section:
    s = Section(
        "Calibration",
        "points on the dashed diagonal mean a score of 0.3 really is a 30% risk; above the "
        "line the model under-states risk, below it over-states.",
        tables=[Table("calibration", "Observed rate per score bin", calibration, show=False)],
    )
    if len(calibration):
        s.figures.append(Figure(charts.calibration_chart(calibration), "Calibration"))
    else:
        s.empty = "Calibration needs labelled decisions of both classes."
    return s


def _cutoffs_section(
    cutoffs: pd.DataFrame, value_curve: pd.DataFrame, costs: Costs, class_names: tuple[str, str]
) -> Section:
    neg, pos = class_names
    s = Section(
        "Cut-offs and expected value",
        f"value per applicant if everything below a cut-off were approved and the rest "
        f"declined; dashed lines mark the value-maximising approve/review/decline cut-offs. "
        f"Costs: approving a '{neg}' earns {costs.gain_good_approved:g}, approving a '{pos}' "
        f"loses {costs.loss_bad_approved:g}, a review costs {costs.review_cost:g}.",
        tables=[
            Table(
                "cutoffs",
                "Optimal cut-offs per model",
                cutoffs,
                percent=("approve_rate", "review_rate", "decline_rate"),
            ),
            Table("value_curve", "Expected value by cut-off", value_curve, show=False),
        ],
    )
    if len(cutoffs):
        chart = charts.value_curve_chart(value_curve, cutoffs)
        s.figures.append(Figure(chart, "Expected value by cut-off"))
    else:
        s.empty = "The cost curve needs labelled decisions of both classes."
    return s


def _importance_section(importance: pd.DataFrame | None) -> Section:
    imp = importance if importance is not None else pd.DataFrame()
    if not {"model", "feature", "importance"} <= set(imp.columns):
        imp = pd.DataFrame(columns=["model", "feature", "importance"])
    imp = imp.sort_values(["model", "importance"], ascending=[True, False]).reset_index(drop=True)
    s = Section(
        "Feature importance",
        "how much each input moves the score on average (mean absolute contribution); the top "
        "bars drive the decisions most.",
        tables=[Table("importance", "Importance per model and feature", imp)],
    )
    if len(imp):
        s.figures.append(Figure(charts.importance_chart(imp), "Feature importance"))
    else:
        s.empty = "No model could be loaded to explain its scores."
    return s


def _verdict_section(verdict: Mapping[str, Any] | None) -> Section:
    how = (
        "a challenger replaces the champion only when it beats it on the same holdout and no "
        "guard metric regresses; each line below is one check of that rule."
    )
    section = Section("Promotion verdict", how)
    if not verdict:
        section.empty = "No promotion decision has been recorded for this model yet."
        return section
    promote = bool(verdict.get("promote"))
    reasons = [str(r) for r in verdict.get("reasons") or []]
    source = str(verdict.get("source") or "")
    headline = "Promoted: the challenger became champion" if promote else "Not promoted"
    if source:
        headline += f" ({source})"
    section.callout = Callout("good" if promote else "warn", headline, tuple(reasons))
    section.tables.append(
        Table(
            "verdict",
            "Verdict and reasons",
            pd.DataFrame(
                {"promote": [promote] * max(len(reasons), 1), "reason": reasons or [""]},
            ),
        )
    )
    return section


# ------------------------------------------------------------------------------ report


def build_evaluation_report(
    out_dir: str | Path,
    day: str,
    scored: pd.DataFrame | None,
    *,
    importance: pd.DataFrame | None = None,
    verdict: Mapping[str, Any] | None = None,
    threshold: float = 0.5,
    costs: Costs | None = None,
    class_names: tuple[str, str] = ("negative", "positive"),
    subtitle: str = "Champion vs challenger on labelled decisions",
    index_href: str = "../index.html",
) -> Path:
    """Write ``evaluation.html``: metrics, confusion matrices, ROC/PR, calibration, cost curve,
    feature importance and the promotion verdict.

    ``scored``: ``model``, ``y`` (1 = ``class_names[1]``), ``score``. ``importance``:
    ``model``, ``feature``, ``importance`` (mean absolute contribution). ``verdict``: ``promote``,
    ``reasons`` and an optional ``source``. Returns the page's path.
    """
    costs = costs or DEFAULT_COSTS
    frame = scored if scored is not None else pd.DataFrame(columns=["model", "y", "score"])
    tables = evaluation_tables(frame, threshold, costs)
    has_scores = len(tables["metrics"]) > 0
    report = Report("evaluation", "Model evaluation", subtitle, day)
    if has_scores:
        report.facts = _evaluation_facts(tables["metrics"], threshold)
    else:
        report.empty = (
            "No scored decision has an outcome (label) yet, so no model can be evaluated. "
            "Metrics appear once outcomes arrive."
        )
    # built in page order: each section renders its charts as it is made
    report.sections.append(_metrics_section(tables["metrics"], threshold, class_names[1]))
    report.sections.append(
        _confusion_section(tables["confusion"], has_scores, threshold, class_names)
    )
    report.sections.append(_curves_section(tables["roc"], tables["pr"]))
    report.sections.append(_calibration_section(tables["calibration"]))
    report.sections.append(
        _cutoffs_section(tables["cutoffs"], tables["value_curve"], costs, class_names)
    )
    report.sections.append(_importance_section(importance))
    report.sections.append(_verdict_section(verdict))
    return write_report(report, out_dir, index_href)
