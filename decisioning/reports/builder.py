"""The three analyst reports, built from DataFrames: evaluation, operations, drift.

Each ``build_*_report`` takes the frames a caller already has (a DAG task, the CLI via
:func:`decisioning.reports.build_reports`), computes the tables behind every chart with pandas,
and writes one self-contained HTML page plus each table as CSV and Parquet into ``out_dir``.
Missing or empty inputs give an explicit "No data yet" state instead of an error.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve, roc_curve

from decisioning.evaluation import QUALITY_METRICS
from decisioning.reports import charts
from decisioning.reports.render import Callout, Figure, Report, Section, Table, write_report
from decisioning.thresholds import Costs, optimal_cutoffs
from models.metrics import compute_metrics

__all__ = [
    "DEFAULT_COSTS",
    "build_drift_report",
    "build_evaluation_report",
    "build_operations_report",
    "distribution_table",
    "evaluation_tables",
    "operations_tables",
]

#: Costs of the expected-value curve when the caller gives none (per applicant, one unit).
DEFAULT_COSTS = Costs(gain_good_approved=1.0, loss_bad_approved=5.0, review_cost=0.3)
DECISIONS: tuple[str, ...] = ("approve", "review", "decline")
_CURVE_POINTS = 200


def _thin(frame: pd.DataFrame, points: int = _CURVE_POINTS) -> pd.DataFrame:
    if len(frame) <= points:
        return frame
    idx = np.unique(np.linspace(0, len(frame) - 1, points).round().astype(int))
    return frame.iloc[idx]


# ------------------------------------------------------------------------------ evaluation


def evaluation_tables(
    scored: pd.DataFrame, threshold: float = 0.5, costs: Costs | None = None
) -> dict[str, pd.DataFrame]:
    """Metric, confusion, ROC, PR, calibration and cost-curve tables per ``model``.

    ``scored`` has ``model`` (a display name, e.g. ``champion v3``), ``y`` (1 = positive class)
    and ``score`` (positive-class probability). Models with one class only get metrics but no
    curves. Returns frames keyed ``metrics confusion roc pr calibration cutoffs value_curve``.
    """
    costs = costs or DEFAULT_COSTS
    metrics, confusion, roc, pr, calib, cutoffs, value = [], [], [], [], [], [], []
    usable = scored.dropna(subset=["y", "score"])
    for model in pd.unique(usable["model"]):
        part = usable[usable["model"] == model]
        y = part["y"].to_numpy(np.int64)
        p = np.clip(part["score"].to_numpy(np.float64), 0.0, 1.0)
        m = compute_metrics(y, p, threshold)
        metrics.append(
            {"model": model, "n": m.n}
            | {name: getattr(m, name) for name in (*QUALITY_METRICS, "pr_auc", "brier")}
        )
        c = m.at_threshold.confusion
        confusion.append({"model": model, "tn": c.tn, "fp": c.fp, "fn": c.fn, "tp": c.tp})
        if np.unique(y).size < 2:
            continue
        fpr, tpr, thr = roc_curve(y, p)
        roc.append(_thin(pd.DataFrame({"model": model, "fpr": fpr, "tpr": tpr, "threshold": thr})))
        prec, rec, thr_pr = precision_recall_curve(y, p)
        pr.append(
            _thin(
                pd.DataFrame(
                    {
                        "model": model,
                        "recall": rec[:-1],
                        "precision": prec[:-1],
                        "threshold": thr_pr,
                    }
                ).iloc[::-1]
            )
        )
        bins = np.clip((p * 10).astype(int), 0, 9)
        grouped = pd.DataFrame({"bin": bins, "y": y, "p": p}).groupby("bin")
        cal = grouped.agg(mean_score=("p", "mean"), observed_rate=("y", "mean"), n=("y", "size"))
        cal = cal.reset_index()
        cal["bin"] = cal["bin"].map(lambda b: f"{b / 10:.1f}-{(b + 1) / 10:.1f}")
        cal.insert(0, "model", model)
        calib.append(cal)
        cut = optimal_cutoffs(y, p, costs, positive_label=1)
        cutoffs.append(
            {
                "model": model,
                "approve_below": cut.approve_below,
                "decline_from": cut.decline_from,
                "expected_value": cut.expected_value,
                "approve_rate": cut.approve_rate,
                "review_rate": cut.review_rate,
                "decline_rate": cut.decline_rate,
                "single_cut_threshold": cut.single_cut_threshold,
                "single_cut_value": cut.single_cut_value,
            }
        )
        curve = _thin(cut.curve.reset_index(drop=True)).copy()
        curve.insert(0, "model", model)
        value.append(curve)

    def cat(frames: list[pd.DataFrame], columns: Sequence[str]) -> pd.DataFrame:
        if not frames:
            return pd.DataFrame(columns=list(columns))
        return pd.concat(frames, ignore_index=True)

    return {
        "metrics": pd.DataFrame(
            metrics,
            columns=["model", "n", *QUALITY_METRICS, "pr_auc", "brier"],
        ),
        "confusion": pd.DataFrame(confusion, columns=["model", "tn", "fp", "fn", "tp"]),
        "roc": cat(roc, ["model", "fpr", "tpr", "threshold"]),
        "pr": cat(pr, ["model", "recall", "precision", "threshold"]),
        "calibration": cat(calib, ["model", "bin", "mean_score", "observed_rate", "n"]),
        "cutoffs": pd.DataFrame(
            cutoffs,
            columns=[
                "model",
                "approve_below",
                "decline_from",
                "expected_value",
                "approve_rate",
                "review_rate",
                "decline_rate",
                "single_cut_threshold",
                "single_cut_value",
            ],
        ),
        "value_curve": cat(
            value,
            [
                "model",
                "threshold",
                "below_rate",
                "value_single_cut",
                "value_vary_t1",
                "value_vary_t2",
            ],
        ),
    }


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
    neg, pos = class_names
    if has_scores:
        m = tables["metrics"]
        report.facts = [
            ("labelled decisions", f"{int(m['n'].sum()):,}"),
            ("models compared", str(len(m))),
            ("best ROC-AUC", _fmt(m["roc_auc"].max())),
            ("cut-off for hard labels", f"{threshold:.2f}"),
        ]
    else:
        report.empty = (
            "No scored decision has an outcome (label) yet, so no model can be evaluated. "
            "Metrics appear once outcomes arrive."
        )
    no_scores = "No labelled, scored decisions in this window."
    s = Section(
        "Champion vs challenger",
        f"one row per model; higher is better for every column except brier. Hard labels use "
        f"score ≥ {threshold:.2f} as '{pos}'. ROC-AUC and PR-AUC judge the ranking itself.",
        tables=[
            Table("metrics", "Metrics per model", tables["metrics"], percent=("positive_rate",))
        ],
    )
    if not has_scores:
        s.empty = no_scores
    report.sections.append(s)
    s = Section(
        "Confusion matrices",
        f"rows are what happened, columns what the model said at cut-off {threshold:.2f}; the "
        f"diagonal is right, 'predicted {neg}' for an actual '{pos}' is a missed case.",
        tables=[Table("confusion", "Counts per model", tables["confusion"])],
    )
    if has_scores:
        s.figures.append(
            Figure(
                charts.confusion_chart(tables["confusion"], class_names),
                "Confusion matrix per model",
            )
        )
    else:
        s.empty = no_scores
    report.sections.append(s)
    s = Section(
        "ROC and precision-recall curves",
        "the further a ROC curve bows to the top-left (and a PR curve to the top-right), the "
        "better the model separates the classes at every cut-off.",
        tables=[
            Table("roc", "ROC curve points", tables["roc"], show=False),
            Table("pr", "Precision-recall curve points", tables["pr"], show=False),
        ],
    )
    if len(tables["roc"]):
        s.figures += [
            Figure(
                charts.curve_chart(
                    tables["roc"],
                    "fpr",
                    "tpr",
                    "ROC curve",
                    "false positive rate",
                    "true positive rate",
                    True,
                ),
                "ROC curves",
            ),
            Figure(
                charts.curve_chart(
                    tables["pr"],
                    "recall",
                    "precision",
                    "Precision-recall curve",
                    "recall",
                    "precision",
                    False,
                ),
                "Precision-recall curves",
            ),
        ]
    else:
        s.empty = "Curves need labelled decisions of both classes."
    report.sections.append(s)
    s = Section(
        "Calibration",
        "points on the dashed diagonal mean a score of 0.3 really is a 30% risk; above the "
        "line the model under-states risk, below it over-states.",
        tables=[
            Table("calibration", "Observed rate per score bin", tables["calibration"], show=False)
        ],
    )
    if len(tables["calibration"]):
        s.figures.append(Figure(charts.calibration_chart(tables["calibration"]), "Calibration"))
    else:
        s.empty = "Calibration needs labelled decisions of both classes."
    report.sections.append(s)
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
                tables["cutoffs"],
                percent=("approve_rate", "review_rate", "decline_rate"),
            ),
            Table("value_curve", "Expected value by cut-off", tables["value_curve"], show=False),
        ],
    )
    if len(tables["cutoffs"]):
        s.figures.append(
            Figure(
                charts.value_curve_chart(tables["value_curve"], tables["cutoffs"]),
                "Expected value by cut-off",
            )
        )
    else:
        s.empty = "The cost curve needs labelled decisions of both classes."
    report.sections.append(s)
    imp = importance if importance is not None else pd.DataFrame()
    imp = (
        imp
        if {"model", "feature", "importance"} <= set(imp.columns)
        else pd.DataFrame(columns=["model", "feature", "importance"])
    )
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
    report.sections.append(s)
    report.sections.append(_verdict_section(verdict))
    return write_report(report, out_dir, index_href)


def _fmt(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "—"
    return "—" if math.isnan(number) else f"{number:.3f}"


# ------------------------------------------------------------------------------ operations


def _period(span: pd.Timedelta) -> tuple[str, str]:
    for freq, fmt, limit in (
        ("1s", "%H:%M:%S", pd.Timedelta(minutes=1)),
        ("10s", "%H:%M:%S", pd.Timedelta(minutes=10)),
        ("1min", "%H:%M", pd.Timedelta(hours=1)),
        ("15min", "%m-%d %H:%M", pd.Timedelta(hours=12)),
        ("1h", "%m-%d %H:00", pd.Timedelta(days=3)),
    ):
        if span <= limit:
            return freq, fmt
    return "1D", "%Y-%m-%d"


def _rates(frame: pd.DataFrame, by: str, names: Sequence[str]) -> pd.DataFrame:
    keyed = frame.assign(**{by: frame[by].astype(object).where(frame[by].notna(), "(none)")})
    counts = pd.crosstab(keyed[by].astype(str), keyed["decision"].astype(str))
    out = pd.DataFrame({by: counts.index.astype(str), "n": counts.sum(axis=1).to_numpy()})
    for name in names:
        col = counts[name] if name in counts else pd.Series(0, index=counts.index)
        out[f"{name}_rate"] = (col / counts.sum(axis=1)).to_numpy(np.float64)
    others = counts[[c for c in counts.columns if c not in names]].sum(axis=1)
    out["other_rate"] = (others / counts.sum(axis=1)).to_numpy(np.float64)
    return out.sort_values("n", ascending=False, kind="stable").reset_index(drop=True)


def operations_tables(
    decisions: pd.DataFrame,
    dead_letters: pd.DataFrame | None = None,
    names: Sequence[str] = DECISIONS,
) -> dict[str, pd.DataFrame]:
    """Volume per period, rates by segment and arm, latency percentiles, DLQ and versions.

    ``decisions`` has ``decided_at``, ``decision``, ``segment``, ``arm``, ``latency_ms``,
    ``model_name``, ``model_version``, ``policy_name``, ``policy_version``; ``dead_letters``
    has ``reason``, ``stage`` (and ``failed_at``).
    """
    out: dict[str, pd.DataFrame] = {}
    d = decisions
    if len(d):
        times = pd.to_datetime(d["decided_at"], utc=True)
        freq, fmt = _period(times.max() - times.min())
        period = times.dt.floor(freq)
        vol = pd.crosstab(period, d["decision"].astype(str))
        for name in names:
            if name not in vol:
                vol[name] = 0
        rest = [c for c in vol.columns if c not in names]
        vol = vol[[*names, *rest]]
        vol["total"] = vol.sum(axis=1)
        vol.index.name = "period"
        vol = vol.reset_index()
        vol.columns.name = None
        vol.insert(1, "period_label", vol["period"].dt.strftime(fmt))
        out["volume"] = vol
        out["by_segment"] = _rates(
            d.assign(segment=d["segment"].fillna("(default)")), "segment", names
        )
        out["by_arm"] = _rates(d, "arm", names)
        qs = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}
        rows = []
        for arm, part in [("all", d), *sorted(d.groupby("arm"), key=lambda kv: str(kv[0]))]:
            lat = part["latency_ms"].astype(float)
            row: dict[str, Any] = {"arm": str(arm), "n": len(part)}
            row.update({k: float(lat.quantile(q)) for k, q in qs.items()})
            row["max"] = float(lat.max())
            rows.append(row)
        out["latency"] = pd.DataFrame(rows)
        keys = ["model_name", "model_version", "policy_name", "policy_version", "arm"]
        versions = (
            d.assign(
                model_version=d["model_version"]
                .astype(object)
                .where(d["model_version"].notna(), "none")
                .astype(str)
            )
            .groupby(keys, dropna=False)
            .agg(
                decisions=("decision", "size"),
                first_seen=("decided_at", "min"),
                last_seen=("decided_at", "max"),
            )
            .reset_index()
            .sort_values("decisions", ascending=False, kind="stable")
            .reset_index(drop=True)
        )
        out["versions"] = versions
    else:
        out["volume"] = pd.DataFrame(columns=["period", "period_label", *names, "total"])
        rate_cols = ["n", *(f"{n}_rate" for n in names), "other_rate"]
        out["by_segment"] = pd.DataFrame(columns=["segment", *rate_cols])
        out["by_arm"] = pd.DataFrame(columns=["arm", *rate_cols])
        out["latency"] = pd.DataFrame(columns=["arm", "n", "p50", "p90", "p95", "p99", "max"])
        out["versions"] = pd.DataFrame(
            columns=[
                "model_name",
                "model_version",
                "policy_name",
                "policy_version",
                "arm",
                "decisions",
                "first_seen",
                "last_seen",
            ]
        )
    dl = dead_letters if dead_letters is not None else pd.DataFrame(columns=["reason", "stage"])
    if len(dl):
        out["dlq"] = (
            dl.assign(reason=dl["reason"].astype(str), stage=dl["stage"].astype(str))
            .groupby(["reason", "stage"])
            .size()
            .rename("dead_letters")
            .reset_index()
            .sort_values("dead_letters", ascending=False, kind="stable")
            .reset_index(drop=True)
        )
    else:
        out["dlq"] = pd.DataFrame(columns=["reason", "stage", "dead_letters"])
    return out


def build_operations_report(
    out_dir: str | Path,
    day: str,
    decisions: pd.DataFrame | None,
    dead_letters: pd.DataFrame | None = None,
    *,
    window: str = "",
    names: Sequence[str] = DECISIONS,
    index_href: str = "../index.html",
) -> Path:
    """Write ``operations.html``: volume over time, rates by segment and arm, latency
    percentiles, dead letters by reason, model and policy versions in use. Returns its path."""
    d = decisions if decisions is not None else pd.DataFrame()
    if len(d) == 0:
        d = pd.DataFrame(
            columns=[
                "decided_at",
                "decision",
                "segment",
                "arm",
                "latency_ms",
                "model_name",
                "model_version",
                "policy_name",
                "policy_version",
            ]
        )
    t = operations_tables(d, dead_letters, names)
    subtitle = "Live decisions" + (f" · {window}" if window else "")
    report = Report("operations", "Decision operations", subtitle, day)
    empty = "No decisions in this window."
    if len(d):
        lat = t["latency"].iloc[0]
        report.facts = [
            ("decisions", f"{len(d):,}"),
            *[(f"{n} rate", f"{float((d['decision'] == n).mean()):.1%}") for n in names],
            ("p95 latency", f"{float(lat['p95']):,.0f} ms"),
            ("dead letters", f"{int(t['dlq']['dead_letters'].sum()):,}"),
        ]
    else:
        report.empty = (
            "No decision has been stored for this window yet. Once the workers decide events "
            "and the sink lands them, volumes and rates appear here."
        )
    s = Section(
        "Volume over time",
        "each bar is one period; colours split it into approve, review and decline.",
        tables=[Table("volume", "Decisions per period", t["volume"])],
    )
    if len(d):
        s.figures.append(Figure(charts.volume_chart(t["volume"], names), "Decisions per period"))
    else:
        s.empty = empty
    report.sections.append(s)
    rate_pct = (*(f"{n}_rate" for n in names), "other_rate")
    for key, by, title, how in (
        (
            "by_segment",
            "segment",
            "Decision rates by segment",
            "each bar is one policy segment (its own score bands); compare how often each is "
            "approved, reviewed or declined.",
        ),
        (
            "by_arm",
            "arm",
            "Decision rates by arm",
            "champion and challenger arms see comparable traffic; a big gap in rates means the "
            "models or policies decide differently.",
        ),
    ):
        s = Section(title, how, tables=[Table(key, title, t[key], percent=rate_pct)])
        if len(t[key]):
            s.figures.append(Figure(charts.stacked_rates_chart(t[key], by, names, title), title))
        else:
            s.empty = empty
        report.sections.append(s)
    s = Section(
        "End-to-end latency",
        "time from the event to its decision. p95 = 95% of decisions were faster than this.",
        tables=[Table("latency", "Latency percentiles (ms)", t["latency"])],
    )
    if len(d):
        row = t["latency"].iloc[0]
        pct = {k: float(row[k]) for k in ("p50", "p95", "p99")}
        s.figures.append(Figure(charts.latency_chart(d["latency_ms"], pct), "Latency histogram"))
    else:
        s.empty = empty
    report.sections.append(s)
    s = Section(
        "Dead letters",
        "events that could not be decided (malformed, invalid, too large…), by reason and stage; "
        "they are kept for replay, not lost.",
        tables=[Table("dlq", "Dead letters by reason", t["dlq"])],
    )
    if len(t["dlq"]):
        by_reason = (
            t["dlq"].groupby("reason")["dead_letters"].sum().sort_values(ascending=False)
        ).reset_index()
        s.figures.append(
            Figure(
                charts.bar_chart(
                    by_reason, "reason", "dead_letters", "Dead letters by reason", "dead letters"
                ),
                "Dead letters by reason",
            )
        )
    else:
        s.empty = "No dead letters in this window."
    report.sections.append(s)
    s = Section(
        "Model and policy versions in use",
        "which model version and policy version decided, per arm, and when each was first and "
        "last seen in the window.",
        tables=[Table("versions", "Versions in use", t["versions"])],
    )
    if not len(d):
        s.empty = empty
    report.sections.append(s)
    return write_report(report, out_dir, index_href)


# ------------------------------------------------------------------------------ drift


def distribution_table(
    reference: pd.DataFrame, recent: pd.DataFrame, feature: str, kind: str, bins: int = 10
) -> pd.DataFrame:
    """Training vs recent share per bin (numeric: training quantile bins) or category."""
    exp = reference[feature] if feature in reference else pd.Series(dtype=object)
    act = recent[feature] if feature in recent else pd.Series(dtype=object)
    if kind == "numeric":
        e = pd.to_numeric(exp, errors="coerce")
        a = pd.to_numeric(act, errors="coerce")
        finite = e.dropna().to_numpy(np.float64)
        if finite.size:
            inner = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]))
        else:
            inner = np.array([])
        edges = np.concatenate([[-np.inf], inner, [np.inf]])
        labels = []
        for lo, hi in itertools.pairwise(edges):
            if np.isneginf(lo):
                labels.append(f"< {hi:,.4g}")
            elif np.isposinf(hi):
                labels.append(f"≥ {lo:,.4g}")
            else:
                labels.append(f"{lo:,.4g} to {hi:,.4g}")

        def shares(values: pd.Series) -> list[float]:
            hist, _ = np.histogram(values.dropna().to_numpy(np.float64), bins=edges)
            counts = np.append(hist, values.isna().sum()).astype(np.float64)
            return list(counts / max(counts.sum(), 1.0))

        labels.append("(missing)")
        frame = pd.DataFrame({"bin": labels, "train_share": shares(e), "recent_share": shares(a)})
        keep = (frame["train_share"] > 0) | (frame["recent_share"] > 0)
        frame = frame[keep | (frame["bin"] != "(missing)")]
    else:
        e = exp.astype(object).where(exp.notna(), "(missing)").astype(str)
        a = act.astype(object).where(act.notna(), "(missing)").astype(str)
        es = e.value_counts(normalize=True)
        ac = a.value_counts(normalize=True)
        cats = list(es.index[:12]) + [c for c in ac.index[:12] if c not in es.index[:12]]
        frame = pd.DataFrame(
            {
                "bin": [str(c) for c in cats],
                "train_share": [float(es.get(c, 0.0)) for c in cats],
                "recent_share": [float(ac.get(c, 0.0)) for c in cats],
            }
        )
    frame.insert(0, "feature", feature)
    return frame.reset_index(drop=True)


def build_drift_report(
    out_dir: str | Path,
    day: str,
    drift: pd.DataFrame | None,
    reference: pd.DataFrame | None = None,
    recent: pd.DataFrame | None = None,
    *,
    worst: int = 4,
    moderate: float = 0.1,
    shift: float = 0.25,
    reference_name: str = "training data",
    index_href: str = "../index.html",
) -> Path:
    """Write ``drift.html``: PSI per feature and training-vs-recent histograms of the worst.

    ``drift`` is :func:`decisioning.evaluation.drift_table` output (``feature``, ``type``,
    ``psi``, ``n_train``, ``n_recent``). Returns the page's path.
    """
    table = drift if drift is not None else pd.DataFrame()
    if not len(table):
        table = pd.DataFrame(columns=["feature", "type", "psi", "n_train", "n_recent"])
    table = table.sort_values("psi", ascending=False, kind="stable").reset_index(drop=True)
    table["status"] = [
        "real shift" if p > shift else "moderate" if p > moderate else "stable"
        for p in table["psi"].astype(float)
    ]
    report = Report("drift", "Drift", f"Recent events vs {reference_name}", day)
    if len(table):
        report.facts = [
            ("features", str(len(table))),
            ("recent events", f"{int(table['n_recent'].max()):,}"),
            ("worst feature", str(table.iloc[0]["feature"])),
            ("worst PSI", _fmt(table.iloc[0]["psi"])),
            ("shifted (> " + f"{shift:g})", str(int((table["psi"] > shift).sum()))),
        ]
    else:
        report.empty = (
            "No recent events to compare with the training data yet. Drift is measured once "
            "events arrive in the window."
        )
    s = Section(
        "Population stability per feature",
        f"PSI compares a feature's recent mix with its training mix: below {moderate:g} is "
        f"stable, {moderate:g} to {shift:g} moderate, above {shift:g} a real shift worth a look.",
        tables=[Table("psi", "PSI per feature", table)],
    )
    if len(table):
        s.figures.append(Figure(charts.psi_chart(table, moderate, shift), "PSI per feature"))
    else:
        s.empty = "No recent events in this window."
    report.sections.append(s)
    top = [(str(r.feature), str(r.type)) for r in table.head(worst).itertuples(index=False)]
    dists = (
        pd.concat([distribution_table(reference, recent, f, k) for f, k in top], ignore_index=True)
        if top and reference is not None and recent is not None and len(recent)
        else pd.DataFrame(columns=["feature", "bin", "train_share", "recent_share"])
    )
    s = Section(
        f"Recent vs training: the {len(top) or worst} most drifted features",
        "blue is the training mix, orange the recent one; bars that differ a lot explain a "
        "high PSI.",
        tables=[
            Table(
                "distributions",
                "Share per bin or category",
                dists,
                percent=("train_share", "recent_share"),
            )
        ],
    )
    if len(dists):
        s.figures.append(
            Figure(charts.distribution_chart(dists, [f for f, _ in top]), "Training vs recent")
        )
    else:
        s.empty = "No recent events to compare."
    report.sections.append(s)
    return write_report(report, out_dir, index_href)
