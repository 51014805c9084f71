"""Steps of the retrain DAG: store -> validated data -> candidates -> holdout -> gate -> registry.

Every function is one DAG task: it reads its inputs from a run-scoped ``work_dir``, writes its
outputs there (Parquet frames, candidate model folders, JSON), and returns a small JSON-safe
dict for XCom. Steps are idempotent: a retry rewrites the same files from the same inputs
(seeded), and ``register``/``promote`` check what is already recorded for this run.

Layout of ``work_dir``::

    data.parquet              extracted labelled rows (store, or the packaged dataset)
    train.parquet holdout.parquet   the one split every candidate and the champion share
    candidates/<family>/      spec.yaml, encoder.json, model/ (family files), meta.json
    evaluation.json           holdout metrics of every candidate (and the chosen one)
    gate.json                 champion metrics on the same holdout + the gate verdict
    registered.json promoted.json   what register / promote did
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from decisioning import store
from models.data import data_fingerprint, holdout_split, labels, load_frame
from models.encoding import TabularEncoder
from models.family import ModelFamily
from models.gate import GateConfig, evaluate_gate
from models.metrics import LOWER_IS_BETTER
from models.spec import FeatureSpec, load_spec, spec_from_yaml
from models.training import TrainedModel, evaluate, train_family, tune_family

__all__ = [
    "DataValidationError",
    "evaluate_candidates",
    "extract_training_data",
    "load_candidate",
    "save_candidate",
    "train_candidate",
    "validate_training_data",
]

log = logging.getLogger(__name__)


class DataValidationError(ValueError):
    """The training data failed validation; the message lists every problem found."""


def _write_json(path: Path, doc: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(doc, indent=1, sort_keys=True, default=str), encoding="utf-8")


def _read_json(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ------------------------------------------------------------------------------ extract


def extract_training_data(
    database_url: str,
    spec_name: str,
    work_dir: str,
    window_days: float | None = None,
    bootstrap: bool = True,
    source: str | None = None,
) -> dict[str, Any]:
    """Labelled rows for training: outcomes joined to the decided features in the store, one
    row per entity (its latest labelled event).

    ``window_days`` keeps events of the last N days (None: all). When the store has no
    labelled row and ``bootstrap`` is on, ``source`` (a CSV/Parquet path) or else the spec's
    packaged dataset is used instead.
    Writes ``data.parquet`` (entity key, features, label) into ``work_dir``.
    """
    spec = load_spec(spec_name)
    since = datetime.now(UTC) - timedelta(days=window_days) if window_days else None
    engine = store.make_engine(database_url)
    try:
        store.create_schema(engine)
        frame = store.labelled_frame(engine, spec, since)
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
    columns = [spec.entity_key.column, *spec.feature_names, spec.label.column]
    frame = frame[[c for c in columns if c in frame.columns]]
    out = Path(work_dir)
    out.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out / "data.parquet", index=False)
    return {"rows": len(frame), "source": used, "since": since.isoformat() if since else None}


# ------------------------------------------------------------------------------ validate


def validate_training_data(
    work_dir: str,
    spec_name: str,
    min_rows: int = 500,
    max_null_share: float = 0.5,
    min_minority_share: float = 0.05,
    test_size: float = 0.2,
    seed: int = 0,
) -> dict[str, Any]:
    """Check ``data.parquet`` and split it into ``train.parquet`` + ``holdout.parquet``.

    Checks: every spec column and the label are present; the label has no missing value and
    only known classes; at least ``min_rows`` rows; no feature is missing in more than
    ``max_null_share`` of rows; the rarer class is at least ``min_minority_share``. Raises
    :class:`DataValidationError` naming every failed check. The split is stratified and
    seeded: every candidate and the champion are scored on the same holdout.
    """
    spec = load_spec(spec_name)
    out = Path(work_dir)
    frame = pd.read_parquet(out / "data.parquet")
    problems: list[str] = []
    missing_cols = [c for c in [*spec.feature_names, spec.label.column] if c not in frame]
    if missing_cols:
        problems.append(f"missing column(s) {missing_cols}")
    if len(frame) < min_rows:
        problems.append(f"only {len(frame)} labelled rows; at least {min_rows} are needed")
    null_shares: dict[str, float] = {}
    for name in spec.feature_names:
        if name in frame:
            share = float(frame[name].isna().mean()) if len(frame) else 0.0
            null_shares[name] = share
            if share > max_null_share:
                problems.append(
                    f"feature {name} is missing in {share:.0%} of rows (limit {max_null_share:.0%})"
                )
    balance: dict[str, int] = {}
    if spec.label.column in frame:
        label = frame[spec.label.column]
        if label.isna().any():
            problems.append(f"label {spec.label.column} has {int(label.isna().sum())} null(s)")
        balance = {str(k): int(v) for k, v in label.dropna().astype(str).value_counts().items()}
        if len(frame) and not label.isna().any():
            y = labels(frame, spec)
            minority = float(min(y.mean(), 1 - y.mean()))
            if minority < min_minority_share:
                problems.append(
                    f"label balance {balance}: the rarer class is {minority:.1%} of rows "
                    f"(at least {min_minority_share:.0%} needed; positive class "
                    f"{spec.label.positive!r})"
                )
    if problems:
        raise DataValidationError(
            f"training data in {out / 'data.parquet'} failed validation:\n- "
            + "\n- ".join(problems)
        )
    train, holdout = holdout_split(frame, spec, test_size, seed)
    train.to_parquet(out / "train.parquet", index=False)
    holdout.to_parquet(out / "holdout.parquet", index=False)
    return {
        "rows": len(frame),
        "train_rows": len(train),
        "holdout_rows": len(holdout),
        "label_balance": balance,
        "max_null_share": max(null_shares.values(), default=0.0),
        "holdout_fingerprint": data_fingerprint(holdout),
    }


# ------------------------------------------------------------------------------ candidates


def save_candidate(trained: TrainedModel, directory: Path) -> None:
    """Write a trained model as spec + encoder + family files + meta (no pickle)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "spec.yaml").write_text(trained.spec.to_yaml(), encoding="utf-8")
    (directory / "encoder.json").write_text(trained.encoder.to_json(), encoding="utf-8")
    trained.model.save(directory / "model")
    _write_json(
        directory / "meta.json",
        {
            "family": trained.family,
            "params": trained.params,
            "seed": trained.seed,
            "train_fingerprint": trained.train_fingerprint,
            "n_train": trained.n_train,
            "fit_seconds": trained.fit_seconds,
            "tuning": trained.tuning,
        },
    )


def load_candidate(directory: str | Path, device: str | None = None) -> TrainedModel:
    """Read a model written by :func:`save_candidate`."""
    path = Path(directory)
    spec: FeatureSpec = spec_from_yaml((path / "spec.yaml").read_text(encoding="utf-8"))
    encoder = TabularEncoder.from_json((path / "encoder.json").read_text(encoding="utf-8"), spec)
    model = ModelFamily.load(path / "model", encoder)
    if device is not None:
        model.to(device)
    meta = _read_json(path / "meta.json")
    return TrainedModel(
        family=meta["family"],
        spec=spec,
        encoder=encoder,
        model=model,
        params=dict(meta["params"]),
        seed=int(meta["seed"]),
        train_fingerprint=meta["train_fingerprint"],
        n_train=int(meta["n_train"]),
        fit_seconds=float(meta.get("fit_seconds", 0.0)),
        tuning=list(meta.get("tuning", [])),
    )


def train_candidate(
    work_dir: str,
    spec_name: str,
    family: str,
    params: Mapping[str, Any] | None = None,
    tune: bool = True,
    seed: int = 0,
    device: str | None = None,
) -> dict[str, Any]:
    """Train one family on ``train.parquet`` into ``candidates/<family>/``.

    With ``params`` those are used as they are (no tuning); else ``tune`` picks them on an
    inner split of the training part (the holdout is never seen).
    """
    spec = load_spec(spec_name)
    out = Path(work_dir)
    train = pd.read_parquet(out / "train.parquet")
    if params:
        trained = train_family(family, train, spec, dict(params), seed, device=device)
    elif tune:
        trained = tune_family(family, train, spec, seed, device=device)
    else:
        trained = train_family(family, train, spec, None, seed, device=device)
    target = out / "candidates" / family
    save_candidate(trained, target)
    return {
        "family": family,
        "path": str(target),
        "params": {k: _finite(v) for k, v in trained.params.items()},
        "fit_seconds": round(trained.fit_seconds, 2),
        "n_train": trained.n_train,
    }


def _headline(trained: Any, holdout: pd.DataFrame, fingerprint: str) -> dict[str, Any]:
    metrics = evaluate(trained, holdout)
    head: dict[str, Any] = {k: _finite(v) for k, v in metrics.headline().items()}
    head["holdout_fingerprint"] = fingerprint
    head["n_holdout"] = metrics.n
    return head


def _better(metric: str, a: float | None, b: float | None) -> bool:
    if a is None:
        return False
    if b is None:
        return True
    return a < b if metric in LOWER_IS_BETTER else a > b


def evaluate_candidates(
    work_dir: str, candidate_paths: Sequence[str], metric: str = "roc_auc"
) -> dict[str, Any]:
    """Score every candidate on the one common holdout; pick the best by ``metric``.

    Writes ``evaluation.json`` (all metrics, the chosen family) and returns it.
    """
    out = Path(work_dir)
    holdout = pd.read_parquet(out / "holdout.parquet")
    fingerprint = data_fingerprint(holdout)
    results: dict[str, dict[str, Any]] = {}
    best: str | None = None
    for path in candidate_paths:
        trained = load_candidate(path)
        results[trained.family] = {
            "path": str(path),
            "metrics": _headline(trained, holdout, fingerprint),
        }
        value = results[trained.family]["metrics"].get(metric)
        if best is None or _better(metric, value, results[best]["metrics"].get(metric)):
            best = trained.family
    if best is None:
        raise ValueError("no candidate was trained")
    doc = {
        "metric": metric,
        "best": best,
        "best_path": results[best]["path"],
        "holdout_fingerprint": fingerprint,
        "candidates": results,
    }
    _write_json(out / "evaluation.json", doc)
    return {
        "best": best,
        "metric": metric,
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


def _registry(url: str) -> Any:
    from models.registry import ModelRegistry

    return ModelRegistry(url)


def gate_candidate(
    work_dir: str,
    registry_url: str,
    model_name: str,
    metric: str = "roc_auc",
    margin: float = 0.0,
    guards: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Score the champion on the same holdout and run the gate against the best candidate.

    No champion (first run) -> promote. A champion that cannot score this data (e.g. its spec
    lacks a column) is reported and replaced. Writes ``gate.json``; returns the verdict.
    """
    out = Path(work_dir)
    ev = _read_json(out / "evaluation.json")
    challenger = ev["candidates"][ev["best"]]["metrics"]
    registry = _registry(registry_url)
    champion_version = registry.alias_version(model_name, "champion")
    champion: dict[str, Any] | None = None
    cfg = gate_config(metric, margin, guards)
    if champion_version is not None:
        holdout = pd.read_parquet(out / "holdout.parquet")
        try:
            loaded = registry.load(model_name, champion_version)
            champion = _headline(loaded, holdout, ev["holdout_fingerprint"])
        except Exception as exc:  # the champion cannot score this data: say so, replace it
            log.exception("champion v%s cannot score the holdout", champion_version)
            verdict_doc: dict[str, Any] = {
                "promote": True,
                "reasons": [f"champion v{champion_version} cannot score the holdout: {exc}"],
            }
        else:
            verdict_doc = evaluate_gate(challenger, champion, cfg).to_dict()
    else:
        verdict_doc = evaluate_gate(challenger, None, cfg).to_dict()
    doc = {
        "family": ev["best"],
        "candidate_path": ev["best_path"],
        "config": cfg.to_dict(),
        "challenger": challenger,
        "champion_version": champion_version,
        "champion": champion,
        "verdict": verdict_doc,
    }
    _write_json(out / "gate.json", doc)
    return {
        "promote": bool(verdict_doc["promote"]),
        "reasons": list(verdict_doc["reasons"]),
        "family": ev["best"],
        "champion_version": champion_version,
    }


def register_candidate(
    work_dir: str, registry_url: str, model_name: str, dry_run: bool = False
) -> dict[str, Any]:
    """Register the gated candidate as the next version (whatever the verdict: it is audited).

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
    metrics = evaluate(trained, holdout)
    version = _registry(registry_url).register(
        trained,
        name=model_name,
        metrics=metrics,
        holdout_fingerprint=data_fingerprint(holdout),
        extra={"run_dir": str(out), "gate": gate["verdict"], "gate_config": gate["config"]},
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
) -> dict[str, Any]:
    """Record the gate's verdict in the alias history and move the aliases accordingly.

    Promote: ``champion`` -> the new version (the training data becomes the drift reference at
    ``reference_path``). Refused: the champion stays; the new version becomes ``challenger``
    and the history keeps the refusal with its reasons. Idempotent per run.
    """
    out = Path(work_dir)
    done = out / "promoted.json"
    if done.is_file():
        return _read_json(done)
    gate = _read_json(out / "gate.json")
    verdict = gate["verdict"]
    registered = _read_json(out / "registered.json") if (out / "registered.json").is_file() else {}
    version = registered.get("version")
    if dry_run or version is None:
        return {
            "promoted": False,
            "dry_run": True,
            "would_promote": verdict["promote"],
            "reasons": verdict["reasons"],
        }
    registry = _registry(registry_url)
    reasons = "; ".join(verdict["reasons"])
    if verdict["promote"]:
        event = registry.promote(
            model_name, version, "champion", reason=f"gate passed: {reasons}", verdict=verdict
        )
        if reference_path:
            ref = Path(reference_path)
            ref.parent.mkdir(parents=True, exist_ok=True)
            tmp = ref.with_suffix(".tmp")
            pd.read_parquet(out / "train.parquet").to_parquet(tmp, index=False)
            tmp.replace(ref)
    else:
        event = registry.promote(
            model_name, version, "challenger", reason=f"gate refused: {reasons}", verdict=verdict
        )
    doc = {
        "promoted": bool(verdict["promote"]),
        "version": version,
        "champion": registry.alias_version(model_name, "champion"),
        "alias_event": event.to_dict(),
        "reasons": verdict["reasons"],
        "dry_run": False,
    }
    _write_json(done, doc)
    return doc


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
    from decisioning.reports import build_evaluation_report, build_index, importance_frame

    holdout = pd.read_parquet(src / "holdout.parquet")
    candidate = load_candidate(ev["best_path"])
    spec = candidate.spec
    y = labels(holdout, spec)
    models: dict[str, Any] = {f"challenger ({ev['best']})": candidate}
    champion_version = gate.get("champion_version") if gate else None
    if champion_version is not None and registry_url and model_name:
        try:
            champion = _registry(registry_url).load(model_name, int(champion_version))
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
        class_names=(f"not {spec.label.positive}", str(spec.label.positive)),
        subtitle=f"Retrain run: candidate vs champion on the common holdout ({len(holdout):,} "
        "rows)",
        index_href="../../index.html",
    )
    build_index(out.parent.parent)


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
    import re

    src = Path(work_dir)
    ev = _read_json(src / "evaluation.json")
    gate = _read_json(src / "gate.json") if (src / "gate.json").is_file() else None
    promoted = _read_json(src / "promoted.json") if (src / "promoted.json").is_file() else None
    registered = (
        _read_json(src / "registered.json") if (src / "registered.json").is_file() else None
    )
    out = Path(reports_dir) / day / f"retrain-{re.sub(r'[^A-Za-z0-9_.-]+', '_', run_id)}"
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
    _write_json(out / "retrain.json", doc)
    _holdout_report(src, out, day, ev, gate, promoted, registry_url, model_name)
    return {"report_dir": str(out), "promoted": bool(promoted and promoted.get("promoted"))}


__all__ += [
    "gate_candidate",
    "gate_config",
    "promote_candidate",
    "register_candidate",
    "write_retrain_report",
]
