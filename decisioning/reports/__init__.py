"""Analyst reports: model evaluation, decision operations and drift as self-contained HTML.

One page per report and day under ``<reports_dir>/<YYYY-MM-DD>/`` (``evaluation.html``,
``operations.html``, ``drift.html``), every table behind a chart next to it as CSV and
Parquet, and ``<reports_dir>/index.html`` listing every day. Charts are matplotlib PNGs inlined
as data URIs; templates are Jinja2 with autoescaping (data is always shown as text).
"""

from __future__ import annotations

from decisioning.reports.builder import (
    DEFAULT_COSTS,
    build_drift_report,
    build_evaluation_report,
    build_operations_report,
    distribution_table,
    evaluation_tables,
    operations_tables,
)
from decisioning.reports.render import build_index
from decisioning.reports.sources import (
    build_day_reports,
    build_reports,
    dead_letters_frame,
    importance_frame,
    latest_verdict,
    scored_frame,
)

__all__ = [
    "DEFAULT_COSTS",
    "build_day_reports",
    "build_drift_report",
    "build_evaluation_report",
    "build_index",
    "build_operations_report",
    "build_reports",
    "dead_letters_frame",
    "distribution_table",
    "evaluation_tables",
    "importance_frame",
    "latest_verdict",
    "operations_tables",
    "scored_frame",
]
