"""Analyst reports: model evaluation, decision operations and drift as self-contained HTML.

One page per report and day under ``<reports_dir>/<YYYY-MM-DD>/`` (``evaluation.html``,
``operations.html``, ``drift.html``), every table behind a chart next to it as CSV and
Parquet, and ``<reports_dir>/index.html`` listing every day. Charts are matplotlib PNGs inlined
as data URIs; templates are Jinja2 with autoescaping (data is always shown as text).
"""

from __future__ import annotations

from analytics.reports.drift_report import build_drift_report, distribution_table
from analytics.reports.evaluation_report import (
    DEFAULT_COSTS,
    build_evaluation_report,
    evaluation_tables,
)
from analytics.reports.operations_report import build_operations_report, operations_tables
from analytics.reports.render import build_index, refresh_indexes
from analytics.reports.sources import (
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
    "refresh_indexes",
    "scored_frame",
]
