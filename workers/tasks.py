"""Celery batch jobs: ``score_file`` for backfills (CSV/Parquet in, decisions Parquet out)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from pandas.api.types import is_numeric_dtype

from workers.celery_app import app

__all__ = ["score_file", "score_frame"]

CHUNK = 2000


def _number_or_text(value: Any) -> Any:
    """A numeric-looking string as a number; anything else unchanged (so checks can reject)."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def typed_columns(df: pd.DataFrame, spec: Any) -> pd.DataFrame:
    """Undo CSV typing accidents cell by cell: one bad cell makes pandas read a whole numeric
    column as text; only that cell should be rejected, not every row."""
    out = df.copy()
    for col in spec.columns:
        if col.type == "numeric" and col.name in out and not is_numeric_dtype(out[col.name]):
            out[col.name] = out[col.name].map(_number_or_text)
    return out


def score_frame(
    df: pd.DataFrame, engine: Any, entity_key: str, progress: Any = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Decide every row of ``df`` through the streaming engine; (decisions, rejects)."""
    from workers.engine import RawRecord
    from workers.producer import event_payload, events_from_frame

    names = engine.spec.feature_names
    df = typed_columns(df, engine.spec)
    if entity_key not in df.columns:
        df = df.assign(**{entity_key: [f"row-{i:06d}" for i in range(len(df))]})
    decisions: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    rows = list(events_from_frame(df, [n for n in names if n in df.columns], entity_key))
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        records = [
            RawRecord(
                "file",
                0,
                start + i,
                eid.encode(),
                json.dumps(event_payload(eid, feats, event_id=f"{eid}")).encode(),
            )
            for i, (eid, feats) in enumerate(chunk)
        ]
        out = engine.process(records)
        decisions += [d.model_dump(mode="json") for d in out.decisions]
        rejects += [d.model_dump(mode="json") for d in out.dlq]
        if progress is not None:
            progress(min(start + CHUNK, len(rows)), len(rows))
    frame = pd.DataFrame(decisions)
    if not frame.empty:
        frame["reasons"] = frame["reasons"].map(json.dumps)
    return frame, pd.DataFrame(rejects)


@app.task(bind=True, name="decisionflow.score_file")  # type: ignore[untyped-decorator]
def score_file(
    self: Any, input_path: str, output_path: str, policy: str | None = None
) -> dict[str, Any]:
    """Score a CSV/Parquet file with the champion and write decisions as Parquet.

    Routed to the ``cpu`` queue by default (send it to ``gpu`` with ``queue="gpu"``); the
    task state reports progress as ``{"done": n, "total": m}``.
    """
    from decisioning.policy import load_policy
    from models.registry import ModelRegistry
    from workers.engine import DecisionEngine
    from workers.settings import WorkerSettings

    settings = WorkerSettings()
    registry = ModelRegistry(settings.registry_url, keys=settings.registry.keys())
    model = registry.load(settings.model_name, "champion")
    engine = DecisionEngine(
        model,
        load_policy(policy or settings.policy, known_features=model.spec.feature_names),
        model.spec,
        max_message_bytes=settings.max_message_bytes,
        threads=settings.torch_threads,
    )
    src = Path(input_path)
    df = pd.read_parquet(src) if src.suffix == ".parquet" else pd.read_csv(src)

    def progress(done: int, total: int) -> None:
        self.update_state(state="PROGRESS", meta={"done": done, "total": total})

    decisions, rejects = score_frame(df, engine, model.spec.entity_key.column, progress)
    engine.close()
    out = Path(output_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    decisions.to_parquet(out, index=False)
    if not rejects.empty:
        rejects.to_parquet(out.with_suffix(".rejects.parquet"), index=False)
    return {
        "decisions": len(decisions),
        "rejects": len(rejects),
        "output": str(out),
        "model_version": model.version,
    }
