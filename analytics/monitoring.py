"""Steps of the daily evaluate DAG: store window -> quality + drift -> reports -> trigger.

Each function is one DAG task. They pass frames as Parquet files in a run-scoped ``work_dir``
and return small JSON-safe dicts (XCom). :func:`write_quality_report` is the one call the
analyst report builder replaces later.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from analytics.evaluation import (
    decision_rates,
    drift_table,
    quality_table,
    retrain_trigger,
)
from models.spec import load_spec
from storage import store

__all__ = [
    "compute_drift",
    "compute_quality",
    "extract_window",
    "write_quality_report",
]

REFERENCE_FILE = "reference.parquet"
log = logging.getLogger(__name__)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item"):  # numpy / pandas scalar
        return _json_safe(value.item())
    if value is pd.NA:
        return None
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = _json_safe(
        frame.astype(object).where(frame.notna(), None).to_dict("records")
    )
    return out


def extract_window(
    database_url: str,
    spec_name: str,
    window_days: float,
    work_dir: str,
    end: str | None = None,
    model_name: str | None = None,
) -> dict[str, Any]:
    """Read the last ``window_days`` of decisions (with outcomes) and event features.

    Writes ``decisions.parquet`` and ``recent.parquet`` into ``work_dir``; ``end`` (ISO time,
    default now) closes the window. ``model_name`` keeps one flow's decisions and events.
    """
    spec = load_spec(spec_name)
    stop = datetime.fromisoformat(end) if end else datetime.now(UTC)
    since = stop - timedelta(days=window_days)
    engine = store.make_engine(database_url)
    try:
        store.create_schema(engine)
        decided = store.decisions_with_outcomes(engine, since, model_name=model_name)
        recent = store.recent_features(engine, since, spec, model_name=model_name)
        from analytics.reports import dead_letters_frame

        dead = dead_letters_frame(engine, since)
    finally:
        engine.dispose()
    out = Path(work_dir)
    out.mkdir(parents=True, exist_ok=True)
    decided.to_parquet(out / "decisions.parquet", index=False)
    recent.to_parquet(out / "recent.parquet", index=False)
    dead.to_parquet(out / "dead_letters.parquet", index=False)
    return {
        "since": since.isoformat(),
        "until": stop.isoformat(),
        "decisions": len(decided),
        "labelled": int(decided["label"].notna().sum()),
        "events": len(recent),
    }


def compute_quality(work_dir: str, spec_name: str, threshold: float = 0.5) -> dict[str, Any]:
    """Metrics and decision rates per (model_version, arm) into ``quality/rates.parquet``."""
    spec = load_spec(spec_name)
    out = Path(work_dir)
    decided = pd.read_parquet(out / "decisions.parquet")
    quality = quality_table(decided, str(spec.label.positive), threshold)
    rates = decision_rates(decided)
    quality.to_parquet(out / "quality.parquet", index=False)
    rates.to_parquet(out / "rates.parquet", index=False)
    return {"groups": len(quality), "labelled": int(quality["labelled"].sum())}


def _reference(spec_name: str, reference_path: str | None) -> tuple[pd.DataFrame, str]:
    """The drift reference: ``reference_path`` when it exists, else the packaged dataset."""
    from models.data import load_frame

    if reference_path and Path(reference_path).is_file():
        return pd.read_parquet(reference_path), reference_path
    spec = load_spec(spec_name)
    log.warning(
        "no drift reference at %s (written when a model is promoted): comparing with the "
        "spec's packaged dataset %s instead",
        reference_path,
        spec.source,
    )
    return load_frame(spec), f"dataset {spec.source}"


def compute_drift(
    work_dir: str, spec_name: str, reference_path: str | None = None, bins: int = 10
) -> dict[str, Any]:
    """PSI per feature between the training reference and the window's events.

    The reference is ``reference_path`` (the Parquet the last promotion wrote) when it
    exists, else the spec's packaged dataset. Writes ``drift.parquet``.
    """

    spec = load_spec(spec_name)
    out = Path(work_dir)
    recent = pd.read_parquet(out / "recent.parquet")
    reference, origin = _reference(spec_name, reference_path)
    if len(recent):
        table = drift_table(reference, recent, spec, bins)
    else:
        table = pd.DataFrame(columns=["feature", "type", "psi", "n_train", "n_recent"])
    table.to_parquet(out / "drift.parquet", index=False)
    worst = table.iloc[0] if len(table) else None
    return {
        "reference": origin,
        "worst_feature": None if worst is None else str(worst["feature"]),
        "worst_psi": None if worst is None else _json_safe(float(worst["psi"])),
    }


def _html_reports(
    src: Path,
    reports_dir: str,
    day: str,
    spec_name: str,
    drift: pd.DataFrame,
    reference_path: str | None,
    registry_url: str | None,
    model_name: str | None,
    threshold: float,
    psi_limit: float,
) -> None:
    from analytics.reports import build_day_reports

    registry = None
    if registry_url:
        from models.registry import ModelRegistry

        registry = ModelRegistry(registry_url)
    dead = src / "dead_letters.parquet"
    recent = pd.read_parquet(src / "recent.parquet")
    build_day_reports(
        reports_dir,
        day,
        decisions=pd.read_parquet(src / "decisions.parquet"),
        spec=load_spec(spec_name),
        dead_letters=pd.read_parquet(dead) if dead.is_file() else None,
        recent=recent,
        reference=_reference(spec_name, reference_path)[0] if len(recent) else None,
        drift=drift,
        registry=registry,
        model_name=model_name,
        threshold=threshold,
        psi_limit=psi_limit,
    )


def write_quality_report(
    work_dir: str,
    reports_dir: str,
    day: str,
    f1_floor: float = 0.5,
    psi_limit: float = 0.25,
    min_labelled: int = 50,
    *,
    spec_name: str | None = None,
    reference_path: str | None = None,
    registry_url: str | None = None,
    model_name: str | None = None,
    threshold: float = 0.5,
) -> dict[str, Any]:
    """Write the analyst reports for ``day`` and decide whether quality asks for a retrain.

    Files under ``<reports_dir>/<day>/``: ``metrics.json`` (everything, with the verdict),
    ``quality.csv``, ``decision_rates.csv``, ``drift.csv``; with ``spec_name`` also the HTML
    reports of :func:`analytics.reports.build_day_reports` (evaluation, operations, drift,
    their CSV/Parquet tables) and the index. Returns the verdict and paths.
    """
    src = Path(work_dir)
    quality = pd.read_parquet(src / "quality.parquet")
    rates = pd.read_parquet(src / "rates.parquet")
    drift = pd.read_parquet(src / "drift.parquet")
    verdict = retrain_trigger(quality, drift, f1_floor, psi_limit, min_labelled)
    out = Path(reports_dir) / day
    out.mkdir(parents=True, exist_ok=True)
    quality.to_csv(out / "quality.csv", index=False)
    rates.to_csv(out / "decision_rates.csv", index=False)
    drift.to_csv(out / "drift.csv", index=False)
    doc = {
        "day": day,
        "generated_at": datetime.now(UTC).isoformat(),
        "rule": {"f1_floor": f1_floor, "psi_limit": psi_limit, "min_labelled": min_labelled},
        "verdict": verdict.to_dict(),
        "quality": _records(quality),
        "decision_rates": _records(rates),
        "drift": _records(drift),
    }
    (out / "metrics.json").write_text(json.dumps(_json_safe(doc), indent=1), encoding="utf-8")
    if spec_name is not None:
        _html_reports(
            src, reports_dir, day, spec_name, drift, reference_path, registry_url, model_name,
            threshold, psi_limit,
        )  # fmt: skip
    return {
        "retrain": verdict.retrain,
        "reasons": verdict.reasons,
        "report_dir": str(out),
        "files": sorted(p.name for p in out.iterdir()),
    }
