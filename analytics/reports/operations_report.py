"""The decision operations report: what the live system decided, how fast, and what failed.

:func:`operations_tables` computes volume per period, decision rates by segment and arm,
latency percentiles, dead letters, the model/policy versions in use and how the reasons were
computed (``reason_method``);
:func:`build_operations_report` turns them into ``operations.html`` plus CSV and Parquet exports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analytics.reports import charts
from analytics.reports.render import Figure, Report, Section, Table, write_report

__all__ = ["DECISIONS", "NO_METHOD", "build_operations_report", "operations_tables"]

DECISIONS: tuple[str, ...] = ("approve", "review", "decline")
NO_METHOD = "none (band, rule or fallback)"
"""How a decision without an attributed reason (``reason_method`` null) is shown."""
_EMPTY = "No decisions in this window."

# Columns of the decisions frame (the header of an empty one) and of the versions table.
_DECISION_COLUMNS = (
    "decided_at",
    "decision",
    "segment",
    "arm",
    "latency_ms",
    "model_name",
    "model_version",
    "policy_name",
    "policy_version",
    "reason_method",
)
_METHOD_COLUMNS = ("decision", "reason_method", "decisions", "share_of_decision", "share_of_all")
_VERSION_KEYS = ("model_name", "model_version", "policy_name", "policy_version", "arm")
_VERSION_COLUMNS = (*_VERSION_KEYS, "decisions", "first_seen", "last_seen")
_PERCENTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}


# ------------------------------------------------------------------------------ tables


def _period(span: pd.Timedelta) -> tuple[str, str]:
    """Bucket frequency and label format for volume bars over a window of ``span``."""
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
    """Decision count and share of each decision (plus ``other``) per value of ``by``."""
    keyed = frame.assign(**{by: frame[by].astype(object).where(frame[by].notna(), "(none)")})
    counts = pd.crosstab(keyed[by].astype(str), keyed["decision"].astype(str))
    out = pd.DataFrame({by: counts.index.astype(str), "n": counts.sum(axis=1).to_numpy()})
    for name in names:
        col = counts[name] if name in counts else pd.Series(0, index=counts.index)
        out[f"{name}_rate"] = (col / counts.sum(axis=1)).to_numpy(np.float64)
    others = counts[[c for c in counts.columns if c not in names]].sum(axis=1)
    out["other_rate"] = (others / counts.sum(axis=1)).to_numpy(np.float64)
    return out.sort_values("n", ascending=False, kind="stable").reset_index(drop=True)


def _volume(d: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """Decisions per period, one column per decision (``names`` first) and a total."""
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
    return vol


def _latency(d: pd.DataFrame) -> pd.DataFrame:
    """Latency percentiles over all decisions (row ``all``), then per arm."""
    rows = []
    for arm, part in [("all", d), *sorted(d.groupby("arm"), key=lambda kv: str(kv[0]))]:
        lat = part["latency_ms"].astype(float)
        row: dict[str, Any] = {"arm": str(arm), "n": len(part)}
        row.update({k: float(lat.quantile(q)) for k, q in _PERCENTILES.items()})
        row["max"] = float(lat.max())
        rows.append(row)
    return pd.DataFrame(rows)


def _versions(d: pd.DataFrame) -> pd.DataFrame:
    """Decisions and first/last sighting per model version, policy version and arm."""
    return (
        d.assign(
            model_version=d["model_version"]
            .astype(object)
            .where(d["model_version"].notna(), "none")
            .astype(str)
        )
        .groupby(list(_VERSION_KEYS), dropna=False)
        .agg(
            decisions=("decision", "size"),
            first_seen=("decided_at", "min"),
            last_seen=("decided_at", "max"),
        )
        .reset_index()
        .sort_values("decisions", ascending=False, kind="stable")
        .reset_index(drop=True)
    )


def _reason_methods(d: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """Decisions per decision x ``reason_method`` (null: :data:`NO_METHOD`), with shares."""
    raw = d["reason_method"] if "reason_method" in d else pd.Series(None, index=d.index)
    method = raw.astype(object).where(raw.notna(), NO_METHOD).astype(str)
    out = (
        pd.DataFrame({"decision": d["decision"].astype(str), "reason_method": method})
        .value_counts()
        .rename("decisions")
        .reset_index()
    )
    out["share_of_decision"] = out["decisions"] / out.groupby("decision")["decisions"].transform(
        "sum"
    )
    out["share_of_all"] = out["decisions"] / len(d)
    rank = out["decision"].map(lambda v: names.index(v) if v in names else len(names))
    order = np.lexsort((-out["decisions"].to_numpy(), out["decision"].to_numpy(), rank))
    return out.iloc[order].reset_index(drop=True)[list(_METHOD_COLUMNS)]


def _empty_decision_tables(names: Sequence[str]) -> dict[str, pd.DataFrame]:
    """The decision tables of an empty window: headers only."""
    rate_cols = ["n", *(f"{n}_rate" for n in names), "other_rate"]
    return {
        "volume": pd.DataFrame(columns=["period", "period_label", *names, "total"]),
        "by_segment": pd.DataFrame(columns=["segment", *rate_cols]),
        "by_arm": pd.DataFrame(columns=["arm", *rate_cols]),
        "latency": pd.DataFrame(columns=["arm", "n", *_PERCENTILES, "max"]),
        "versions": pd.DataFrame(columns=list(_VERSION_COLUMNS)),
        "reason_methods": pd.DataFrame(columns=list(_METHOD_COLUMNS)),
    }


def _dead_letters(dead_letters: pd.DataFrame | None) -> pd.DataFrame:
    """Dead letters counted per reason and stage, most frequent first."""
    dl = dead_letters if dead_letters is not None else pd.DataFrame(columns=["reason", "stage"])
    if not len(dl):
        return pd.DataFrame(columns=["reason", "stage", "dead_letters"])
    return (
        dl.assign(reason=dl["reason"].astype(str), stage=dl["stage"].astype(str))
        .groupby(["reason", "stage"])
        .size()
        .rename("dead_letters")
        .reset_index()
        .sort_values("dead_letters", ascending=False, kind="stable")
        .reset_index(drop=True)
    )


def operations_tables(
    decisions: pd.DataFrame,
    dead_letters: pd.DataFrame | None = None,
    names: Sequence[str] = DECISIONS,
) -> dict[str, pd.DataFrame]:
    """Volume per period, rates by segment and arm, latency percentiles, DLQ, versions and
    reason methods.

    ``decisions`` has ``decided_at``, ``decision``, ``segment``, ``arm``, ``latency_ms``,
    ``model_name``, ``model_version``, ``policy_name``, ``policy_version`` and optionally
    ``reason_method`` (missing: all null); ``dead_letters`` has ``reason``, ``stage`` (and
    ``failed_at``).
    """
    d = decisions
    if not len(d):
        out = _empty_decision_tables(names)
    else:
        out = {
            "volume": _volume(d, names),
            "by_segment": _rates(
                d.assign(segment=d["segment"].fillna("(default)")), "segment", names
            ),
            "by_arm": _rates(d, "arm", names),
            "latency": _latency(d),
            "versions": _versions(d),
            "reason_methods": _reason_methods(d, names),
        }
    out["dlq"] = _dead_letters(dead_letters)
    return out


# ------------------------------------------------------------------------------ sections


def _operations_facts(
    d: pd.DataFrame, t: Mapping[str, pd.DataFrame], names: Sequence[str]
) -> list[tuple[str, str]]:
    lat = t["latency"].iloc[0]  # the ``all`` row
    return [
        ("decisions", f"{len(d):,}"),
        *[(f"{n} rate", f"{float((d['decision'] == n).mean()):.1%}") for n in names],
        ("p95 latency", f"{float(lat['p95']):,.0f} ms"),
        ("dead letters", f"{int(t['dlq']['dead_letters'].sum()):,}"),
    ]


def _volume_section(volume: pd.DataFrame, has_data: bool, names: Sequence[str]) -> Section:
    s = Section(
        "Volume over time",
        "each bar is one period; colours split it into approve, review and decline.",
        tables=[Table("volume", "Decisions per period", volume)],
    )
    if has_data:
        s.figures.append(Figure(charts.volume_chart(volume, names), "Decisions per period"))
    else:
        s.empty = _EMPTY
    return s


def _rate_sections(t: Mapping[str, pd.DataFrame], names: Sequence[str]) -> list[Section]:
    """One section per rate table: by segment, then by arm."""
    rate_pct = (*(f"{n}_rate" for n in names), "other_rate")
    sections = []
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
            s.empty = _EMPTY
        sections.append(s)
    return sections


def _latency_section(latency: pd.DataFrame, latency_ms: pd.Series) -> Section:
    s = Section(
        "End-to-end latency",
        "time from the event to its decision. p95 = 95% of decisions were faster than this.",
        tables=[Table("latency", "Latency percentiles (ms)", latency)],
    )
    if len(latency_ms):
        row = latency.iloc[0]
        pct = {k: float(row[k]) for k in ("p50", "p95", "p99")}
        s.figures.append(Figure(charts.latency_chart(latency_ms, pct), "Latency histogram"))
    else:
        s.empty = _EMPTY
    return s


def _dlq_section(dlq: pd.DataFrame) -> Section:
    s = Section(
        "Dead letters",
        "events that could not be decided (malformed, invalid, too large…), by reason and stage; "
        "they are kept for replay, not lost.",
        tables=[Table("dlq", "Dead letters by reason", dlq)],
    )
    if not len(dlq):
        s.empty = "No dead letters in this window."
        return s
    by_reason = (
        dlq.groupby("reason")["dead_letters"].sum().sort_values(ascending=False)
    ).reset_index()
    chart = charts.bar_chart(
        by_reason, "reason", "dead_letters", "Dead letters by reason", "dead letters"
    )
    s.figures.append(Figure(chart, "Dead letters by reason"))
    return s


def _versions_section(versions: pd.DataFrame, has_data: bool) -> Section:
    s = Section(
        "Model and policy versions in use",
        "which model version and policy version decided, per arm, and when each was first and "
        "last seen in the window.",
        tables=[Table("versions", "Versions in use", versions)],
    )
    if not has_data:
        s.empty = _EMPTY
    return s


def _reason_methods_section(methods: pd.DataFrame, has_data: bool) -> Section:
    s = Section(
        "How reasons were computed",
        "the method behind each decision's feature reasons (integrated gradients, gradient x "
        f"input, tree path, linear, occlusion); “{NO_METHOD}” means no attributed reason was "
        "given: an approval inside its band, a hard rule or the fallback decided.",
        tables=[
            Table(
                "reason_methods",
                "Decisions by reason method",
                methods,
                percent=("share_of_decision", "share_of_all"),
            )
        ],
    )
    if not has_data:
        s.empty = _EMPTY
    return s


# ------------------------------------------------------------------------------ report


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
    percentiles, dead letters by reason, model and policy versions in use, reason methods.
    Returns its path."""
    d = decisions if decisions is not None else pd.DataFrame()
    if len(d) == 0:
        d = pd.DataFrame(columns=list(_DECISION_COLUMNS))
    t = operations_tables(d, dead_letters, names)
    has_data = len(d) > 0
    subtitle = "Live decisions" + (f" · {window}" if window else "")
    report = Report("operations", "Decision operations", subtitle, day)
    if has_data:
        report.facts = _operations_facts(d, t, names)
    else:
        report.empty = (
            "No decision has been stored for this window yet. Once the workers decide events "
            "and the sink lands them, volumes and rates appear here."
        )
    # built in page order: each section renders its charts as it is made
    report.sections.append(_volume_section(t["volume"], has_data, names))
    report.sections.extend(_rate_sections(t, names))
    report.sections.append(_latency_section(t["latency"], d["latency_ms"]))
    report.sections.append(_dlq_section(t["dlq"]))
    report.sections.append(_versions_section(t["versions"], has_data))
    report.sections.append(_reason_methods_section(t["reason_methods"], has_data))
    return write_report(report, out_dir, index_href)
