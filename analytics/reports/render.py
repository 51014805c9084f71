"""The report model (sections, figures, tables) and its rendering: HTML, CSV, Parquet, index.

Templates are Jinja2 with autoescaping on for every ``.j2`` file, so any value that comes from
the data (a segment, a reason, a category) is written as text, never as markup. Table cells are
formatted in Python (numbers, missing values) and escaped by the template.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd

__all__ = [
    "Callout",
    "Figure",
    "Report",
    "Section",
    "Table",
    "build_index",
    "refresh_indexes",
    "write_report",
]

MAX_ROWS = 40
_DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TITLES = {
    "evaluation": "Model evaluation",
    "operations": "Decision operations",
    "drift": "Drift",
}


@dataclass(frozen=True)
class Figure:
    """One chart: a data URI (inline PNG) and its alternative text."""

    src: str
    alt: str


@dataclass
class Table:
    """A table behind a chart; exported as ``<report>-<key>.csv`` and ``.parquet``."""

    key: str
    title: str
    frame: pd.DataFrame
    percent: tuple[str, ...] = ()
    show: bool = True
    """False: long point lists (curves) are only linked for download, not printed."""


@dataclass(frozen=True)
class Callout:
    """A highlighted box: ``kind`` is ``good``, ``warn`` or ``bad``."""

    kind: str
    headline: str
    lines: tuple[str, ...] = ()


@dataclass
class Section:
    """A titled part of a report with a one-line "how to read this"."""

    title: str
    how_to_read: str
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    callout: Callout | None = None
    empty: str | None = None


@dataclass
class Report:
    """One report page: ``kind`` names its file (``<kind>.html``)."""

    kind: str
    title: str
    subtitle: str
    day: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    empty: str | None = None

    @property
    def tables(self) -> list[Table]:
        """Every table of every section."""
        return [t for s in self.sections for t in s.tables]


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("analytics.reports", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "j2"), default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _cell(value: Any, percent: bool) -> str:
    if value is None or value is pd.NA or value is pd.NaT:
        return "—"
    if isinstance(value, float) and math.isnan(value):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, pd.Timestamp | datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float):
        if percent:
            return f"{value:.1%}"
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3f}"
    if hasattr(value, "item"):  # numpy scalar
        return _cell(value.item(), percent)
    return str(value)


def _view(table: Table, prefix: str) -> dict[str, Any]:
    frame = table.frame
    shown = frame.head(MAX_ROWS)
    rows = [
        [_cell(v, col in table.percent) for col, v in zip(shown.columns, row, strict=True)]
        for row in shown.itertuples(index=False, name=None)
    ]
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]
    return {
        "title": table.title,
        "columns": [str(c) for c in frame.columns],
        "numeric": numeric,
        "rows": rows,
        "total": len(frame),
        "show": table.show,
        "csv": f"{prefix}-{table.key}.csv",
        "parquet": f"{prefix}-{table.key}.parquet",
    }


def _parquet_ready(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object:
            out[col] = out[col].map(lambda v: None if v is None or v is pd.NA else str(v))
    return out


def write_report(report: Report, out_dir: str | Path, index_href: str = "../index.html") -> Path:
    """Write ``<out_dir>/<kind>.html`` and every table as CSV and Parquet; returns the page.

    ``index_href`` is the link back to the index page, relative to ``out_dir``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for table in report.tables:
        base = out / f"{report.kind}-{table.key}"
        table.frame.to_csv(base.with_suffix(".csv"), index=False)
        _parquet_ready(table.frame).to_parquet(base.with_suffix(".parquet"), index=False)
    sections = [
        {
            "title": s.title,
            "how_to_read": s.how_to_read,
            "figures": s.figures,
            "tables": [_view(t, report.kind) for t in s.tables],
            "notes": s.notes,
            "callout": s.callout,
            "empty": s.empty,
        }
        for s in report.sections
    ]
    html = (
        _env()
        .get_template("report.html.j2")
        .render(
            report=report,
            sections=sections,
            index_href=index_href,
            generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        )
    )
    path = out / f"{report.kind}.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path


def _label(path: Path, day_dir: Path, flow: str) -> str:
    rel = path.relative_to(day_dir)
    base = _TITLES.get(path.stem, path.stem.replace("_", " ").capitalize())
    if len(rel.parts) > 1:  # a retrain run's folder
        base = f"{base} — {rel.parts[0]}"
    return f"{flow} · {base}" if flow else base


def _day_dirs(root: Path) -> dict[str, list[tuple[str, Path]]]:
    """``{day: [(flow, folder)]}``: day folders of the root ("" flow) and of its flow folders
    (``<root>/<flow>/<day>``, as the DAGs and ``decisionflow report --flow`` write them)."""
    out: dict[str, list[tuple[str, Path]]] = {}
    for entry in sorted(root.iterdir()):
        if not entry.is_dir():
            continue
        if _DAY_RE.match(entry.name):
            out.setdefault(entry.name, []).append(("", entry))
            continue
        for day_dir in sorted(entry.iterdir()):
            if day_dir.is_dir() and _DAY_RE.match(day_dir.name):
                out.setdefault(day_dir.name, []).append((entry.name, day_dir))
    return out


def build_index(reports_dir: str | Path) -> Path:
    """(Re)write ``<reports_dir>/index.html``: every day folder, newest first, with its pages
    (those of each flow folder ``<reports_dir>/<flow>/<day>`` too, named by their flow)."""
    root = Path(reports_dir)
    root.mkdir(parents=True, exist_ok=True)
    days = []
    order = {"evaluation": 0, "operations": 1, "drift": 2}
    for day, folders in sorted(_day_dirs(root).items(), reverse=True):
        pages = [
            (flow, day_dir, page)
            for flow, day_dir in folders
            for page in sorted(day_dir.glob("*.html"), key=lambda p: (order.get(p.stem, 9), p.name))
            + sorted(day_dir.glob("*/*.html"))
        ]
        if not pages:
            continue
        try:
            weekday = date.fromisoformat(day).strftime("%A")
        except ValueError:
            weekday = ""
        days.append(
            {
                "day": day,
                "weekday": weekday,
                "pages": [
                    {"href": p.relative_to(root).as_posix(), "label": _label(p, d, flow)}
                    for flow, d, p in pages
                ],
            }
        )
    html = (
        _env()
        .get_template("index.html.j2")
        .render(days=days, generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))
    )
    path = root / "index.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path


def refresh_indexes(reports_dir: str | Path) -> Path:
    """:func:`build_index` of ``reports_dir``, and of the reports root too when
    ``reports_dir`` is a flow's folder in it (so ``var/reports/index.html`` lists every flow).
    Returns the first."""
    from models import paths

    index = build_index(reports_dir)
    root = paths.reports_dir()
    if Path(reports_dir).resolve().parent == root.resolve():
        build_index(root)
    return index
