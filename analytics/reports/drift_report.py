"""The drift report: how far recent events have moved from the training data.

:func:`distribution_table` compares one feature's training and recent mix per bin or category;
:func:`build_drift_report` ranks features by PSI and writes ``drift.html`` with the
distributions of the most drifted ones, plus CSV and Parquet exports.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from analytics.reports import charts
from analytics.reports.common import fmt_number
from analytics.reports.render import Figure, Report, Section, Table, write_report

__all__ = ["build_drift_report", "distribution_table"]

_MISSING = "(missing)"
_TOP_CATEGORIES = 12  # per side: the most common training and recent categories are shown


# ------------------------------------------------------------------------------ tables


def _bin_labels(edges: npt.NDArray[np.float64]) -> list[str]:
    """Readable labels of the bins between consecutive ``edges`` (open-ended at both ends)."""
    labels = []
    for lo, hi in itertools.pairwise(edges):
        if np.isneginf(lo):
            labels.append(f"< {hi:,.4g}")
        elif np.isposinf(hi):
            labels.append(f"≥ {lo:,.4g}")
        else:
            labels.append(f"{lo:,.4g} to {hi:,.4g}")
    return labels


def _numeric_distribution(exp: pd.Series, act: pd.Series, bins: int) -> pd.DataFrame:
    """Shares per training-quantile bin, plus a ``(missing)`` row when either side has any."""
    e = pd.to_numeric(exp, errors="coerce")
    a = pd.to_numeric(act, errors="coerce")
    finite = e.dropna().to_numpy(np.float64)
    if finite.size:
        inner = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]))
    else:
        inner = np.array([])
    edges = np.concatenate([[-np.inf], inner, [np.inf]])

    def shares(values: pd.Series) -> list[float]:
        hist, _ = np.histogram(values.dropna().to_numpy(np.float64), bins=edges)
        counts = np.append(hist, values.isna().sum()).astype(np.float64)
        return list(counts / max(counts.sum(), 1.0))

    labels = [*_bin_labels(edges), _MISSING]
    frame = pd.DataFrame({"bin": labels, "train_share": shares(e), "recent_share": shares(a)})
    keep = (frame["train_share"] > 0) | (frame["recent_share"] > 0)
    return frame[keep | (frame["bin"] != _MISSING)]


def _category_distribution(exp: pd.Series, act: pd.Series) -> pd.DataFrame:
    """Shares of the most common training categories, then recent ones not among them."""
    e = exp.astype(object).where(exp.notna(), _MISSING).astype(str)
    a = act.astype(object).where(act.notna(), _MISSING).astype(str)
    es = e.value_counts(normalize=True)
    ac = a.value_counts(normalize=True)
    top = es.index[:_TOP_CATEGORIES]
    cats = list(top) + [c for c in ac.index[:_TOP_CATEGORIES] if c not in top]
    return pd.DataFrame(
        {
            "bin": [str(c) for c in cats],
            "train_share": [float(es.get(c, 0.0)) for c in cats],
            "recent_share": [float(ac.get(c, 0.0)) for c in cats],
        }
    )


def distribution_table(
    reference: pd.DataFrame, recent: pd.DataFrame, feature: str, kind: str, bins: int = 10
) -> pd.DataFrame:
    """Training vs recent share per bin (numeric: training quantile bins) or category."""
    exp = reference[feature] if feature in reference else pd.Series(dtype=object)
    act = recent[feature] if feature in recent else pd.Series(dtype=object)
    if kind == "numeric":
        frame = _numeric_distribution(exp, act, bins)
    else:
        frame = _category_distribution(exp, act)
    frame.insert(0, "feature", feature)
    return frame.reset_index(drop=True)


def _psi_table(drift: pd.DataFrame | None, moderate: float, shift: float) -> pd.DataFrame:
    """The drift table sorted by PSI (worst first) with a readable ``status`` column."""
    table = drift if drift is not None else pd.DataFrame()
    if not len(table):
        table = pd.DataFrame(columns=["feature", "type", "psi", "n_train", "n_recent"])
    table = table.sort_values("psi", ascending=False, kind="stable").reset_index(drop=True)
    table["status"] = [
        "real shift" if p > shift else "moderate" if p > moderate else "stable"
        for p in table["psi"].astype(float)
    ]
    return table


# ------------------------------------------------------------------------------ sections


def _drift_facts(table: pd.DataFrame, shift: float) -> list[tuple[str, str]]:
    return [
        ("features", str(len(table))),
        ("recent events", f"{int(table['n_recent'].max()):,}"),
        ("worst feature", str(table.iloc[0]["feature"])),
        ("worst PSI", fmt_number(table.iloc[0]["psi"])),
        ("shifted (> " + f"{shift:g})", str(int((table["psi"] > shift).sum()))),
    ]


def _psi_section(table: pd.DataFrame, moderate: float, shift: float) -> Section:
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
    return s


def _distributions_section(
    top: list[tuple[str, str]],
    worst: int,
    reference: pd.DataFrame | None,
    recent: pd.DataFrame | None,
) -> Section:
    """Training vs recent distributions of the ``top`` (feature, type) pairs."""
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
        chart = charts.distribution_chart(dists, [f for f, _ in top])
        s.figures.append(Figure(chart, "Training vs recent"))
    else:
        s.empty = "No recent events to compare."
    return s


# ------------------------------------------------------------------------------ report


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

    ``drift`` is :func:`analytics.evaluation.drift_table` output (``feature``, ``type``,
    ``psi``, ``n_train``, ``n_recent``). Returns the page's path.
    """
    table = _psi_table(drift, moderate, shift)
    report = Report("drift", "Drift", f"Recent events vs {reference_name}", day)
    if len(table):
        report.facts = _drift_facts(table, shift)
    else:
        report.empty = (
            "No recent events to compare with the training data yet. Drift is measured once "
            "events arrive in the window."
        )
    report.sections.append(_psi_section(table, moderate, shift))
    top = [(str(r.feature), str(r.type)) for r in table.head(worst).itertuples(index=False)]
    report.sections.append(_distributions_section(top, worst, reference, recent))
    return write_report(report, out_dir, index_href)
