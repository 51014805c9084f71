"""Where the reports' data comes from: the decision store, the registry, the drift reference.

:func:`build_day_reports` turns frames a caller already holds (the evaluate DAG's window) into
all three reports and the index; :func:`build_reports` first reads those frames from the store
(the ``decisionflow report`` command). Both share every line of report code.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select

from analytics.evaluation import drift_table
from analytics.reports.drift_report import build_drift_report
from analytics.reports.evaluation_report import build_evaluation_report
from analytics.reports.operations_report import build_operations_report
from analytics.reports.render import refresh_indexes
from decisioning.thresholds import Costs
from models.spec import FeatureSpec, load_spec
from storage import store

__all__ = [
    "build_day_reports",
    "build_reports",
    "dead_letters_frame",
    "importance_frame",
    "latest_verdict",
    "scored_frame",
]

log = logging.getLogger(__name__)
_IMPORTANCE_ROWS = 1000


def dead_letters_frame(engine: Engine, since: datetime | None = None) -> pd.DataFrame:
    """Dead letters (``reason``, ``stage``, ``error_class``, ``failed_at``) since ``since``."""
    t = store.dead_letters
    stmt = select(t.c.reason, t.c.stage, t.c.error_class, t.c.failed_at)
    if since is not None:
        stmt = stmt.where(t.c.failed_at >= since)
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(stmt).all()]
    frame = pd.DataFrame.from_records(rows, columns=["reason", "stage", "error_class", "failed_at"])
    frame["failed_at"] = pd.to_datetime(frame["failed_at"], utc=True)
    return frame


def _model_label(arm: Any, version: Any, shadow: Any) -> str:
    v = "v?" if version is None or version is pd.NA else f"v{int(version)}"
    return f"{arm} {v}" + (" (shadow)" if bool(shadow) else "")


def scored_frame(decisions: pd.DataFrame, positive: str) -> pd.DataFrame:
    """Labelled, scored decisions as ``model``/``y``/``score`` (champion rows first).

    ``model`` is ``<arm> v<version>`` (``(shadow)`` for shadow scores); ``y`` is 1 where the
    label equals ``positive``.
    """
    cols = ["model", "y", "score", "model_version"]
    if not len(decisions):
        return pd.DataFrame(columns=cols)
    d = decisions[decisions["label"].notna() & decisions["score"].notna()]
    shadow = d["shadow"] if "shadow" in d else pd.Series(False, index=d.index)
    models = [
        _model_label(a, v, s) for a, v, s in zip(d["arm"], d["model_version"], shadow, strict=True)
    ]
    out = pd.DataFrame(
        {
            "model": models,
            "y": (d["label"].astype(str) == str(positive)).astype(np.int64).to_numpy(),
            "score": d["score"].astype(float).to_numpy(),
            "model_version": d["model_version"].to_numpy(),
        }
    )
    keys = out["model"].map(
        lambda m: f"{int('(shadow)' in m)}{int(not m.startswith('champion'))}{m}"
    )
    return out.iloc[np.argsort(keys.to_numpy(), kind="stable")].reset_index(drop=True)


def latest_verdict(registry: Any, model_name: str) -> dict[str, Any] | None:
    """The newest alias move that carries a gate verdict, as ``promote``/``reasons``/``source``."""
    try:
        history = registry.history(model_name)
    except Exception:  # unknown model, unreadable registry: no verdict to show
        log.exception("cannot read the alias history of %s", model_name)
        return None
    for event in reversed(history):
        if event.verdict:
            return {
                "promote": bool(event.verdict.get("promote")),
                "reasons": list(event.verdict.get("reasons") or []),
                "source": f"v{event.to_version} → {event.alias}, {event.ts[:16].replace('T', ' ')}",
            }
    return None


def importance_frame(models: dict[str, Any], features: pd.DataFrame) -> pd.DataFrame:
    """Mean absolute contribution per raw feature for each ``{label: model}`` on ``features``.

    Each model needs ``explain(frame)`` and ``feature_names`` (a registry ``LoadedModel`` or a
    ``TrainedModel``); one that cannot explain is skipped (logged).
    """
    rows = []
    sample = features.head(_IMPORTANCE_ROWS)
    if not len(sample):
        return pd.DataFrame(columns=["model", "feature", "importance"])
    for label, model in models.items():
        try:
            contrib = np.asarray(model.explain(sample), dtype=np.float64)
            names = list(getattr(model, "feature_names", None) or model.spec.feature_names)
        except Exception:
            log.exception("model %s cannot explain its scores", label)
            continue
        for name, value in zip(names, np.abs(contrib).mean(axis=0), strict=True):
            rows.append({"model": label, "feature": name, "importance": float(value)})
    return pd.DataFrame(rows, columns=["model", "feature", "importance"])


def _registry_models(registry: Any, model_name: str, scored: pd.DataFrame) -> dict[str, Any]:
    models: dict[str, Any] = {}
    if registry is None or not len(scored):
        return models
    loaded: dict[int, Any] = {}
    for label, version in scored.drop_duplicates("model")[["model", "model_version"]].itertuples(
        index=False
    ):
        if version is None or version is pd.NA or "(shadow)" in str(label):
            continue
        try:
            if int(version) not in loaded:
                loaded[int(version)] = registry.load(model_name, int(version))
        except Exception:
            log.exception("cannot load %s v%s for feature importance", model_name, version)
            continue
        models[str(label)] = loaded[int(version)]
    return models


def build_day_reports(
    reports_dir: str | Path,
    day: str,
    *,
    decisions: pd.DataFrame,
    spec: FeatureSpec,
    dead_letters: pd.DataFrame | None = None,
    recent: pd.DataFrame | None = None,
    reference: pd.DataFrame | None = None,
    drift: pd.DataFrame | None = None,
    registry: Any = None,
    model_name: str | None = None,
    threshold: float = 0.5,
    costs: Costs | None = None,
    window: str = "",
    psi_limit: float = 0.25,
) -> dict[str, Path]:
    """All three reports of ``day`` from frames, plus the rebuilt index.

    ``decisions`` is :func:`~storage.store.decisions_with_outcomes` output (shadow rows
    included when wanted); ``recent``/``reference`` are feature frames of the window and of the
    training data; ``drift`` is computed from them when not given. ``registry`` (a
    :class:`~models.registry.ModelRegistry`) adds feature importance and the promotion verdict.
    Returns ``{"evaluation": ..., "operations": ..., "drift": ..., "index": ...}``.
    """
    out = Path(reports_dir) / day
    positive = str(spec.label.positive)
    scored = scored_frame(decisions, positive)
    seen = [str(v) for v in decisions["label"].dropna().unique()] if len(decisions) else []
    others = sorted(v for v in seen if v != positive)
    negative = others[0] if len(others) == 1 else f"not {positive}"
    name = model_name or spec.name
    verdict = latest_verdict(registry, name) if registry is not None else None
    models = _registry_models(registry, name, scored)
    features = recent if recent is not None else pd.DataFrame()
    importance = importance_frame(models, features) if models else None
    live = decisions[~decisions["shadow"].astype(bool)] if "shadow" in decisions else decisions
    if drift is None and recent is not None and reference is not None and len(recent):
        drift = drift_table(reference, recent, spec)
    paths = {
        "evaluation": build_evaluation_report(
            out,
            day,
            scored,
            importance=importance,
            verdict=verdict,
            threshold=threshold,
            costs=costs,
            class_names=(negative, positive),
            subtitle=f"Model {name}: champion vs challenger on labelled live decisions"
            + (f" · {window}" if window else ""),
        ),
        "operations": build_operations_report(out, day, live, dead_letters, window=window),
        "drift": build_drift_report(out, day, drift, reference, recent, shift=psi_limit),
    }
    paths["index"] = refresh_indexes(reports_dir)
    return paths


def _window(day: str, window_days: float) -> tuple[datetime, datetime]:
    end = datetime.combine(date.fromisoformat(day) + timedelta(days=1), time(), tzinfo=UTC)
    end = min(end, datetime.now(UTC))
    return end - timedelta(days=window_days), end


def build_reports(
    engine_or_url: Engine | str,
    reports_dir: str | Path,
    day: str | None = None,
    *,
    registry: Any = None,
    model_name: str | None = None,
    spec: str | FeatureSpec = "credit_data",
    window_days: float = 7.0,
    threshold: float = 0.5,
    costs: Costs | None = None,
    reference_path: str | Path | None = None,
    flow_model: str | None = None,
) -> dict[str, Path]:
    """Read the window ending with ``day`` (default today, UTC) and write every report.

    ``registry`` is a :class:`~models.registry.ModelRegistry` or its URL (None: no feature
    importance, no verdict). ``flow_model`` keeps the decisions and events of one flow (the
    model its decisions name); None reads every decision in the store. The drift reference is
    ``reference_path`` when that file exists, else the spec's packaged dataset. Returns the
    written paths (see :func:`build_day_reports`).
    """
    from models.data import load_frame

    the_spec = load_spec(spec) if isinstance(spec, str) else spec
    day = day or datetime.now(UTC).date().isoformat()
    since, until = _window(day, window_days)
    engine = store.make_engine(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
    try:
        store.create_schema(engine)
        decided = store.decisions_with_outcomes(
            engine, since, include_shadow=True, model_name=flow_model
        )
        decided = decided[decided["decided_at"] < until].reset_index(drop=True)
        dlq = dead_letters_frame(engine, since)
        dlq = dlq[dlq["failed_at"] < until]
        recent = store.recent_features(engine, since, the_spec, model_name=flow_model)
    finally:
        if isinstance(engine_or_url, str):
            engine.dispose()
    if reference_path and Path(reference_path).is_file():
        reference, ref_name = pd.read_parquet(reference_path), "the promoted model's training data"
    else:
        reference, ref_name = load_frame(the_spec), f"dataset {the_spec.source}"
    if isinstance(registry, str):
        from models.registry import ModelRegistry

        registry = ModelRegistry(registry)
    log.info("reports for %s: %d decisions, %d events (drift vs %s)", day, len(decided),
             len(recent), ref_name)  # fmt: skip
    window = f"{since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M} UTC"
    return build_day_reports(
        reports_dir,
        day,
        decisions=decided,
        spec=the_spec,
        dead_letters=dlq,
        recent=recent,
        reference=reference,
        registry=registry,
        model_name=model_name,
        threshold=threshold,
        costs=costs,
        window=window,
    )
