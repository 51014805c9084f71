"""The optimise step: runtime variants of a registered version, checked on its holdout.

Run by the retrain pipeline after ``register`` (before ``promote``, so a new champion has its
variants when workers load it) and by ``decisionflow models optimise NAME VERSION``.
Builds, checks and stores the variants (:mod:`models.optimise`); this module supplies what the
models package must not know:

- **cut-offs**: the score thresholds of the decision policies (:func:`policy_cutoffs`; default:
  every shipped policy), passed to the models code as plain numbers;
- **holdout** (:func:`registered_holdout`): a run's own ``holdout.parquet`` when the run is at
  hand (its fingerprint must be the one registered), else the spec's dataset split again with
  the seed and size recorded at registration, as training did (``same_as_registered`` says
  whether its fingerprint matches).

The pipeline step (:func:`optimise_candidate`) never fails the run: a failure is recorded in
``optimised.json`` and the version is served natively.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from models.data import data_fingerprint, load_frame
from models.optimise import OptimiseSettings, Outcome, optimise_version
from models.parity import BATCH_SIZES, bounds_with
from models.registry import ModelRegistry
from models.runtimes import VARIANT_KINDS
from pipelines.retrain import split_training_data

__all__ = [
    "optimise_candidate",
    "optimise_registered",
    "policy_cutoffs",
    "registered_holdout",
]

log = logging.getLogger(__name__)


def policy_cutoffs(policies: Sequence[str] = ()) -> list[float]:
    """Every score threshold of the named policies (names or YAML paths; none: every shipped
    policy): the band edges of the default bands and of every segment, 0 and 1 left out."""
    from decisioning.policy import available_policies, load_policy

    cuts: set[float] = set()
    for ref in policies or available_policies():
        policy = load_policy(ref)
        for bands in [policy.bands, *(segment.bands for segment in policy.segments)]:
            cuts |= {float(b.lower) for b in bands if 0.0 < b.lower < 1.0}
    return sorted(cuts)


def registered_holdout(
    registry: ModelRegistry, name: str, version: int, source: str | Path | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The holdout of a registered version and where it came from (see the module docstring)."""
    meta = registry.metadata(name, version)
    extra = meta.get("extra") or {}
    wanted = meta.get("holdout_fingerprint")
    run_dir = extra.get("run_dir")
    if source is None and run_dir and (Path(run_dir) / "holdout.parquet").is_file():
        frame = pd.read_parquet(Path(run_dir) / "holdout.parquet")
        fingerprint = data_fingerprint(frame)
        if fingerprint == wanted:
            info = {"source": f"run holdout {run_dir}/holdout.parquet", "fingerprint": wanted}
            return frame, {**info, "same_as_registered": True}
    model = registry.load(name, version, device="cpu")
    seed, size = int(extra.get("holdout_seed", 0)), float(extra.get("test_size", 0.2))
    _, holdout = split_training_data(load_frame(model.spec, source), model.spec, size, seed)
    fingerprint = data_fingerprint(holdout)
    where = f"{source or model.spec.source} split (seed {seed}, test_size {size})"
    return holdout, {
        "source": where,
        "fingerprint": fingerprint,
        "same_as_registered": fingerprint == wanted,
    }


def _settings(
    cutoffs: Sequence[float],
    bounds: Sequence[str],
    variants: Sequence[str] | None,
    batch_sizes: Sequence[int],
    min_seconds: float,
    threads: int,
) -> OptimiseSettings:
    return OptimiseSettings(
        cutoffs=tuple(cutoffs),
        bounds=bounds_with(bounds),
        variants=tuple(variants or VARIANT_KINDS),
        batch_sizes=tuple(batch_sizes),
        min_seconds=min_seconds,
        threads=threads,
    )


def _summary(
    version: int, outcomes: Sequence[Outcome], cutoffs: Sequence[float], holdout: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "version": version,
        "cutoffs": list(cutoffs),
        "holdout": dict(holdout),
        "variants": {o.variant: o.summary() for o in outcomes},
        "servable": [o.variant for o in outcomes if o.status == "servable"],
    }


def optimise_registered(
    registry_url: str,
    name: str,
    ref: str | int,
    *,
    policies: Sequence[str] = (),
    cutoffs: Sequence[float] | None = None,
    source: str | Path | None = None,
    bounds: Sequence[str] = (),
    variants: Sequence[str] | None = None,
    batch_sizes: Sequence[int] = BATCH_SIZES,
    min_seconds: float = 0.2,
    threads: int = 1,
) -> dict[str, Any]:
    """Optimise version ``ref`` of ``name`` (the CLI): its holdout, the policies' cut-offs
    (or ``cutoffs``), ``bounds`` overrides (``VARIANT.FIELD=NUMBER``); a JSON-safe summary."""
    registry = ModelRegistry(registry_url)
    version = registry.resolve(name, ref)
    cuts = list(cutoffs) if cutoffs else policy_cutoffs(policies)
    settings = _settings(cuts, bounds, variants, batch_sizes, min_seconds, threads)  # checks
    holdout, info = registered_holdout(registry, name, version, source)
    version, outcomes = optimise_version(registry, name, version, holdout, settings, info)
    return _summary(version, outcomes, cuts, info)


def optimise_candidate(
    work_dir: str,
    registry_url: str,
    model_name: str,
    policies: Sequence[str] = (),
    dry_run: bool = False,
    min_seconds: float = 0.2,
) -> dict[str, Any]:
    """The pipeline step: variants of the version ``register`` recorded, checked on the run's
    holdout. Writes ``optimised.json``; idempotent per run; never raises (a failure is
    recorded there and the version is served natively)."""
    out = Path(work_dir)
    done = out / "optimised.json"
    if done.is_file():
        doc: dict[str, Any] = json.loads(done.read_text(encoding="utf-8"))
        return doc
    registered_path = out / "registered.json"
    registered = json.loads(registered_path.read_text()) if registered_path.is_file() else {}
    version = registered.get("version")
    if dry_run or version is None:
        return {"version": None, "skipped": "nothing registered (dry run)"}
    try:
        holdout = pd.read_parquet(out / "holdout.parquet")
        info = {
            "source": f"run holdout {out}/holdout.parquet",
            "fingerprint": data_fingerprint(holdout),
            "same_as_registered": True,
        }
        cuts = policy_cutoffs(policies)
        settings = _settings(cuts, (), None, BATCH_SIZES, min_seconds, 1)
        registry = ModelRegistry(registry_url)
        _, outcomes = optimise_version(registry, model_name, int(version), holdout, settings, info)
        result = _summary(int(version), outcomes, cuts, info)
    except Exception as exc:  # optimisation is an optional speed-up: never block promotion
        log.exception("optimising %s v%s failed", model_name, version)
        result = {"version": version, "error": f"{type(exc).__name__}: {exc}"[:500]}
    done.write_text(json.dumps(result, indent=1, sort_keys=True, default=str), encoding="utf-8")
    return result
