"""The retrain pipeline on a work dir: one function per step, files between steps.

The retrain DAG runs each step as one task; ``decisionflow models train`` runs them all in
order with :func:`run_retrain`. Both share the same steps and rules (:mod:`pipelines.retrain`).
Each step reads its inputs from a run-scoped ``work_dir``, writes its outputs there (Parquet
frames, candidate model folders, JSON) and returns a small JSON-safe dict (the DAG's XCom).
Steps are idempotent: a retry rewrites the same files from the same inputs (seeded), and
``register``/``promote`` check what is already recorded for this run.

Layout of ``work_dir``::

    data.parquet              labelled rows (the store, a given frame or the packaged dataset)
    train.parquet holdout.parquet split.json   the one split every candidate and the champion share
    candidates/<family>/      spec.yaml, encoder.json, model/ (family files), meta.json
    evaluation.json           holdout metrics of every candidate and the best one
    gate.json                 champion metrics on the same holdout + the gate verdict
    registered.json promoted.json   what register / promote did
    optimised.json            the registered version's runtime variants (pipelines.optimise)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from models.data import data_fingerprint
from models.gate import GateConfig
from models.registry import ModelRegistry
from models.spec import FeatureSpec, load_spec
from pipelines.candidates import load_candidate, save_candidate
from pipelines.retrain import (
    alias_for,
    check_training_data,
    fit_candidate,
    gate_verdict,
    holdout_metrics,
    json_safe,
    pick_best,
    split_training_data,
)

__all__ = [
    "evaluate_candidates",
    "extract_training_data",
    "gate_candidate",
    "gate_config",
    "promote_candidate",
    "read_doc",
    "register_candidate",
    "run_retrain",
    "train_candidate",
    "use_frame",
    "validate_training_data",
]

log = logging.getLogger(__name__)


def _write_json(path: Path, doc: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(doc, indent=1, sort_keys=True, default=str), encoding="utf-8")


def _read_json(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def read_doc(path: Path) -> dict[str, Any] | None:
    """A step's JSON document, or None when that step has not written it."""
    return _read_json(path) if path.is_file() else None


def _keep_columns(frame: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    columns = [spec.entity_key.column, *spec.feature_names, spec.label.column]
    return frame[[c for c in columns if c in frame.columns]]


# ------------------------------------------------------------------------------ data


def use_frame(frame: pd.DataFrame, spec_name: str, work_dir: str, origin: str) -> dict[str, Any]:
    """Start a run from a frame in hand (a dataset, not the store): writes ``data.parquet``."""
    spec = load_spec(spec_name)
    out = Path(work_dir)
    out.mkdir(parents=True, exist_ok=True)
    _keep_columns(frame, spec).to_parquet(out / "data.parquet", index=False)
    return {"rows": len(frame), "source": origin, "since": None}


def extract_training_data(
    database_url: str,
    spec_name: str,
    work_dir: str,
    window_days: float | None = None,
    bootstrap: bool = True,
    source: str | None = None,
    model_name: str | None = None,
) -> dict[str, Any]:
    """Labelled rows for training: outcomes joined to the decided features in the store, one
    row per entity (its latest labelled event). ``model_name`` keeps the events one flow
    decided (its decisions name its model): another flow's rows never join its training data.

    ``window_days`` keeps events of the last N days (None: all). When the store has no
    labelled row and ``bootstrap`` is on, ``source`` (a CSV/Parquet path) or else the spec's
    packaged dataset is used instead.
    Writes ``data.parquet`` (entity key, features, label) into ``work_dir``.
    """
    from models.data import load_frame
    from storage import store

    spec = load_spec(spec_name)
    since = datetime.now(UTC) - timedelta(days=window_days) if window_days else None
    engine = store.make_engine(database_url)
    try:
        store.create_schema(engine)
        frame = store.labelled_frame(engine, spec, since, model_name=model_name)
    finally:
        engine.dispose()
    used = "store"
    # An entity decided several times (re-sent or replayed events) is one labelled example:
    # keep its latest event, or copies of one row land on both sides of the holdout split.
    frame = frame.drop_duplicates(subset=[spec.entity_key.column], keep="last")
    if len(frame) == 0 and bootstrap:
        origin = source or spec.source
        frame, used = load_frame(spec, source), f"dataset {origin}"
        log.info("the store has no labelled rows: bootstrapping from %s", origin)
    result = use_frame(frame, spec_name, work_dir, used)
    return {**result, "since": since.isoformat() if since else None}


def validate_training_data(
    work_dir: str,
    spec_name: str,
    min_rows: int = 500,
    max_null_share: float = 0.5,
    min_minority_share: float | None = None,
    test_size: float = 0.2,
    seed: int = 0,
) -> dict[str, Any]:
    """Check ``data.parquet`` (:func:`~pipelines.retrain.check_training_data`; the rarer
    class's floor is the spec's ``label.min_share`` unless ``min_minority_share`` is given) and
    split it into ``train.parquet`` + ``holdout.parquet`` (seeded, stratified; ``split.json``)."""
    spec = load_spec(spec_name)
    out = Path(work_dir)
    frame = pd.read_parquet(out / "data.parquet")
    summary = check_training_data(
        frame,
        spec,
        min_rows=min_rows,
        max_null_share=max_null_share,
        min_minority_share=min_minority_share,
        origin=f"training data in {out / 'data.parquet'}",
    )
    train, holdout = split_training_data(frame, spec, test_size, seed)
    train.to_parquet(out / "train.parquet", index=False)
    holdout.to_parquet(out / "holdout.parquet", index=False)
    fingerprint = data_fingerprint(holdout)
    _write_json(
        out / "split.json",
        {"seed": seed, "test_size": test_size, "holdout_fingerprint": fingerprint},
    )
    return {
        **summary,
        "train_rows": len(train),
        "holdout_rows": len(holdout),
        "holdout_fingerprint": fingerprint,
    }


# ------------------------------------------------------------------------------ candidates


def train_candidate(
    work_dir: str,
    spec_name: str,
    family: str,
    params: Mapping[str, Any] | None = None,
    tune: bool = True,
    seed: int = 0,
    device: str | None = None,
) -> dict[str, Any]:
    """Train one family on ``train.parquet`` into ``candidates/<family>/``
    (:func:`~pipelines.retrain.fit_candidate`)."""
    spec = load_spec(spec_name)
    out = Path(work_dir)
    train = pd.read_parquet(out / "train.parquet")
    trained = fit_candidate(train, spec, family, params, tune, seed, device)
    target = out / "candidates" / family
    save_candidate(trained, target)
    return {
        "family": family,
        "path": str(target),
        "params": {k: json_safe(v) for k, v in trained.params.items()},
        "fit_seconds": round(trained.fit_seconds, 2),
        "n_train": trained.n_train,
    }


def evaluate_candidates(
    work_dir: str,
    candidate_paths: Sequence[str],
    metric: str = "roc_auc",
    threshold: float = 0.5,
) -> dict[str, Any]:
    """Score every candidate on the one common holdout and pick the best
    (:func:`~pipelines.retrain.pick_best`). Writes ``evaluation.json``.

    Hard-decision metrics (accuracy, precision, recall, f1) use ``threshold``; it is recorded
    in ``evaluation.json`` and the gate and registration of the run use it too.
    """
    out = Path(work_dir)
    holdout = pd.read_parquet(out / "holdout.parquet")
    results: dict[str, dict[str, Any]] = {}
    for path in candidate_paths:
        trained = load_candidate(path)
        _, head = holdout_metrics(trained, holdout, threshold)
        results[trained.family] = {"path": str(path), "metrics": head}
    if not results:
        raise ValueError("no candidate was trained")
    best = pick_best({k: v["metrics"] for k, v in results.items()}, metric)
    doc = {
        "metric": metric,
        "threshold": threshold,
        "best": best,
        "best_path": results[best]["path"],
        "holdout_fingerprint": results[best]["metrics"]["holdout_fingerprint"],
        "candidates": results,
    }
    _write_json(out / "evaluation.json", doc)
    return {
        "best": best,
        "metric": metric,
        "threshold": threshold,
        "value": results[best]["metrics"].get(metric),
        "candidates": {k: v["metrics"].get(metric) for k, v in results.items()},
    }


def gate_config(
    metric: str, margin: float, guards: Mapping[str, float] | None = None
) -> GateConfig:
    """The gate settings a run asks for (default guards of :class:`GateConfig` when None)."""
    if guards is None:
        return GateConfig(primary=metric, margin=margin)
    return GateConfig(primary=metric, margin=margin, guards=dict(guards))


# ------------------------------------------------------------------------------ registry


def gate_candidate(
    work_dir: str,
    registry_url: str,
    model_name: str,
    metric: str = "roc_auc",
    margin: float = 0.0,
    guards: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Score the champion on the same holdout and gate the best candidate against it
    (:func:`~pipelines.retrain.gate_verdict`). Writes ``gate.json``; returns the verdict."""
    out = Path(work_dir)
    ev = _read_json(out / "evaluation.json")
    challenger = ev["candidates"][ev["best"]]["metrics"]
    registry = ModelRegistry(registry_url)
    champion_version = registry.alias_version(model_name, "champion")
    cfg = gate_config(metric, margin, guards)
    champion_model: Any = None
    if champion_version is not None:
        try:
            champion_model = registry.load(model_name, champion_version)
        except Exception as exc:  # e.g. tampered or unreadable: the gate says so
            log.exception("champion v%s cannot be loaded", champion_version)
            champion_model = exc
    holdout = pd.read_parquet(out / "holdout.parquet")
    threshold = float(ev.get("threshold", 0.5))
    verdict, champion = gate_verdict(
        challenger, champion_model, holdout, cfg, champion_version, threshold
    )
    doc = {
        "family": ev["best"],
        "candidate_path": ev["best_path"],
        "config": cfg.to_dict(),
        "challenger": challenger,
        "champion_version": champion_version,
        "champion": champion,
        "verdict": verdict,
    }
    _write_json(out / "gate.json", doc)
    return {
        "promote": bool(verdict["promote"]),
        "reasons": list(verdict["reasons"]),
        "family": ev["best"],
        "champion_version": champion_version,
    }


def register_candidate(
    work_dir: str, registry_url: str, model_name: str, dry_run: bool = False
) -> dict[str, Any]:
    """Register the gated (best) candidate as the next version, whatever the verdict.

    Idempotent per run: a retry after a successful registration returns the recorded version.
    ``dry_run`` registers nothing.
    """
    out = Path(work_dir)
    done = out / "registered.json"
    if done.is_file():
        return _read_json(done)
    gate = _read_json(out / "gate.json")
    if dry_run:
        return {"version": None, "dry_run": True, "family": gate["family"]}
    trained = load_candidate(gate["candidate_path"])
    holdout = pd.read_parquet(out / "holdout.parquet")
    threshold = float((read_doc(out / "evaluation.json") or {}).get("threshold", 0.5))
    metrics, head = holdout_metrics(trained, holdout, threshold)
    split = read_doc(out / "split.json") or {}
    version = ModelRegistry(registry_url).register(
        trained,
        name=model_name,
        metrics=metrics,
        holdout_fingerprint=head["holdout_fingerprint"],
        extra={
            "run_dir": str(out),
            "holdout_seed": split.get("seed", 0),
            "test_size": split.get("test_size", 0.2),
            "gate": gate["verdict"],
            "gate_config": gate["config"],
        },
    )
    doc = {"version": int(version), "family": gate["family"], "dry_run": False}
    _write_json(done, doc)
    return doc


def promote_candidate(
    work_dir: str,
    registry_url: str,
    model_name: str,
    reference_path: str | None = None,
    dry_run: bool = False,
    promote: bool = True,
) -> dict[str, Any]:
    """Record the gate's verdict in the alias history and move the alias
    (:func:`~pipelines.retrain.alias_for`).

    ``champion`` -> the new version when the gate passed (and ``promote``): its training data
    becomes the drift reference at ``reference_path``. Otherwise the champion stays, the new
    version becomes ``challenger`` and the history keeps the verdict. Idempotent per run.
    """
    out = Path(work_dir)
    done = out / "promoted.json"
    if done.is_file():
        return _read_json(done)
    verdict = _read_json(out / "gate.json")["verdict"]
    registered = read_doc(out / "registered.json") or {}
    version = registered.get("version")
    if dry_run or version is None:
        return {
            "promoted": False,
            "dry_run": True,
            "would_promote": verdict["promote"],
            "reasons": verdict["reasons"],
        }
    registry = ModelRegistry(registry_url)
    reasons = "; ".join(verdict["reasons"])
    alias = alias_for(bool(verdict["promote"]), promote)
    word = "passed" if verdict["promote"] else "refused"
    event = registry.promote(
        model_name, version, alias, reason=f"gate {word}: {reasons}", verdict=verdict
    )
    if alias == "champion" and reference_path:
        ref = Path(reference_path)
        ref.parent.mkdir(parents=True, exist_ok=True)
        tmp = ref.with_suffix(".tmp")
        pd.read_parquet(out / "train.parquet").to_parquet(tmp, index=False)
        tmp.replace(ref)
    doc = {
        "promoted": alias == "champion",
        "version": version,
        "alias": alias,
        "champion": registry.alias_version(model_name, "champion"),
        "alias_event": event.to_dict(),
        "reasons": verdict["reasons"],
        "dry_run": False,
    }
    _write_json(done, doc)
    return doc


# ------------------------------------------------------------------------------ whole run


def run_retrain(
    work_dir: str,
    spec_name: str,
    registry_url: str,
    model_name: str,
    families: Sequence[str],
    *,
    frame: pd.DataFrame | None = None,
    origin: str = "a frame",
    database_url: str | None = None,
    source: str | None = None,
    family_params: Mapping[str, Mapping[str, Any]] | None = None,
    tune: bool = True,
    seed: int = 0,
    test_size: float = 0.2,
    min_rows: int = 500,
    metric: str = "roc_auc",
    margin: float = 0.0,
    promote: bool = True,
    dry_run: bool = False,
    reference_path: str | None = None,
    device: str | None = None,
    optimise: bool = True,
    threshold: float = 0.5,
) -> dict[str, Any]:
    """Every step in order, as the retrain DAG runs them; returns each step's result.

    The data is ``frame`` when given, else the store at ``database_url`` (bootstrapping from
    ``source`` or the spec's dataset while it has no labels), else ``source``/the dataset.
    ``optimise``: build the registered version's runtime variants (:mod:`pipelines.optimise`)
    before promoting it. ``threshold``: the cut-off of the hard-decision metrics (f1 is a
    guard of the gate) for candidates and champion alike.
    """
    from models.data import load_frame
    from pipelines.optimise import optimise_candidate

    if frame is None and database_url is None:
        spec = load_spec(spec_name)
        frame, origin = load_frame(spec, source), f"dataset {source or spec.source}"
    if frame is not None:
        data = use_frame(frame, spec_name, work_dir, origin)
    else:
        assert database_url is not None
        data = extract_training_data(database_url, spec_name, work_dir, source=source)
    valid = validate_training_data(
        work_dir, spec_name, min_rows=min_rows, test_size=test_size, seed=seed
    )
    trained = [
        train_candidate(
            work_dir, spec_name, fam, (family_params or {}).get(fam), tune, seed, device
        )
        for fam in dict.fromkeys(families)
    ]
    evaluation = evaluate_candidates(work_dir, [t["path"] for t in trained], metric, threshold)
    verdict = gate_candidate(work_dir, registry_url, model_name, metric, margin)
    registered = register_candidate(work_dir, registry_url, model_name, dry_run)
    optimised = (
        optimise_candidate(work_dir, registry_url, model_name, dry_run=dry_run)
        if optimise
        else {"version": registered.get("version"), "skipped": "not asked for"}
    )
    promotion = promote_candidate(
        work_dir, registry_url, model_name, reference_path, dry_run, promote
    )
    return {
        "data": data,
        "validation": valid,
        "candidates": trained,
        "evaluation": evaluation,
        "gate": verdict,
        "registered": registered,
        "optimised": optimised,
        "promotion": promotion,
    }
