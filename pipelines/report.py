"""The retrain run's report: candidate vs champion on the common holdout, for analysts."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from models import paths
from models.data import labels
from models.registry import ModelRegistry
from pipelines.candidates import load_candidate
from pipelines.workdir import read_doc

__all__ = ["write_retrain_report"]

log = logging.getLogger(__name__)


def _holdout_report(
    src: Path,
    out: Path,
    day: str,
    ev: Mapping[str, Any],
    gate: Mapping[str, Any] | None,
    promoted: Mapping[str, Any] | None,
    registry_url: str | None,
    model_name: str | None,
) -> None:
    """``evaluation.html``: the chosen candidate vs the champion, both scored on the holdout."""
    from analytics.reports import build_evaluation_report, importance_frame, refresh_indexes

    holdout = pd.read_parquet(src / "holdout.parquet")
    candidate = load_candidate(ev["best_path"])
    spec = candidate.spec
    y = labels(holdout, spec)
    models: dict[str, Any] = {f"challenger ({ev['best']})": candidate}
    champion_version = gate.get("champion_version") if gate else None
    if champion_version is not None and registry_url and model_name:
        try:
            champion = ModelRegistry(registry_url).load(model_name, int(champion_version))
            models = {f"champion v{champion_version}": champion, **models}
        except Exception:  # the gate already said why; the report shows the challenger alone
            log.exception("champion v%s cannot be loaded for the report", champion_version)
    frames = []
    for label, model in models.items():
        try:
            score = model.score(holdout)
        except Exception:
            log.exception("%s cannot score the holdout", label)
            continue
        frames.append(pd.DataFrame({"model": label, "y": y, "score": score}))
    scored = pd.concat(frames, ignore_index=True) if frames else None
    verdict: dict[str, Any] | None = None
    if gate:
        verdict = dict(gate["verdict"])
        moved = "dry run" if promoted is None or promoted.get("dry_run") else "recorded"
        verdict["source"] = f"retrain gate on {gate['config']['primary']}, {moved}"
    build_evaluation_report(
        out,
        day,
        scored,
        importance=importance_frame(models, holdout[spec.feature_names]),
        verdict=verdict,
        threshold=float(ev.get("threshold", 0.5)),  # the run's cut-off, as its metrics
        class_names=(f"not {spec.label.positive}", str(spec.label.positive)),
        subtitle=f"Retrain run: candidate vs champion on the common holdout ({len(holdout):,} "
        "rows)",
        index_href="../../index.html",
    )
    refresh_indexes(out.parent.parent)


def write_retrain_report(
    work_dir: str,
    reports_dir: str,
    day: str,
    run_id: str,
    *,
    registry_url: str | None = None,
    model_name: str | None = None,
) -> dict[str, Any]:
    """Write the run's evaluation report: ``<reports_dir>/<day>/retrain-<run>/``.

    ``evaluation.html`` (the analyst page: candidate vs champion on the holdout, with its
    tables as CSV/Parquet; the champion needs ``registry_url`` and ``model_name``),
    ``retrain.json`` (candidates, holdout metrics, champion, verdict, registry outcome) and
    ``candidates.csv`` (one row per family on the common holdout). Refreshes the index.
    """
    src = Path(work_dir)
    ev = read_doc(src / "evaluation.json")
    if ev is None:
        raise FileNotFoundError(f"no evaluation.json in {src}: the evaluate step did not run")
    gate = read_doc(src / "gate.json")
    promoted = read_doc(src / "promoted.json")
    registered = read_doc(src / "registered.json")
    out = Path(reports_dir) / day / f"retrain-{paths.safe_part(run_id)}"
    out.mkdir(parents=True, exist_ok=True)
    rows = [{"family": fam, **res["metrics"]} for fam, res in ev["candidates"].items()]
    pd.DataFrame(rows).to_csv(out / "candidates.csv", index=False)
    doc = {
        "run_id": run_id,
        "generated_at": datetime.now(UTC).isoformat(),
        "evaluation": ev,
        "gate": gate,
        "registered": registered,
        "promotion": promoted,
    }
    (out / "retrain.json").write_text(json.dumps(doc, indent=1, sort_keys=True, default=str))
    _holdout_report(src, out, day, ev, gate, promoted, registry_url, model_name)
    return {"report_dir": str(out), "promoted": bool(promoted and promoted.get("promoted"))}
