"""The retrain workflow (train candidates -> evaluate -> register -> gate -> promote) as functions.

DAG tasks and CLI commands call these; each step is also usable on its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from models.data import data_fingerprint, holdout_split, load_frame
from models.family import FAMILY_NAMES
from models.gate import GateConfig, Verdict, evaluate_gate
from models.metrics import LOWER_IS_BETTER, Metrics
from models.registry import ModelRegistry
from models.spec import FeatureSpec
from models.training import evaluate, train_candidates

__all__ = [
    "CandidateResult",
    "RetrainReport",
    "evaluate_registered",
    "gate_challenger",
    "retrain",
]


@dataclass(frozen=True)
class CandidateResult:
    """One trained family: its registry version and holdout metrics."""

    family: str
    version: int
    metrics: Metrics
    fit_seconds: float


@dataclass
class RetrainReport:
    """What a retrain run did."""

    name: str
    seed: int
    holdout_fingerprint: str
    candidates: list[CandidateResult]
    best_version: int
    best_family: str
    champion_before: int | None
    champion_metrics: dict[str, float] | None = None
    verdict: Verdict | None = None
    promoted: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible summary."""
        return {
            "name": self.name,
            "seed": self.seed,
            "holdout_fingerprint": self.holdout_fingerprint,
            "candidates": [
                {
                    "family": c.family,
                    "version": c.version,
                    "fit_seconds": round(c.fit_seconds, 2),
                    "metrics": c.metrics.headline(),
                }
                for c in self.candidates
            ],
            "best_version": self.best_version,
            "best_family": self.best_family,
            "champion_before": self.champion_before,
            "champion_metrics": self.champion_metrics,
            "verdict": self.verdict.to_dict() if self.verdict else None,
            "promoted": self.promoted,
            "notes": self.notes,
        }


def _with_fingerprint(metrics: Metrics, fingerprint: str) -> dict[str, Any]:
    return {**metrics.headline(), "holdout_fingerprint": fingerprint}


def gate_challenger(
    registry: ModelRegistry,
    name: str,
    challenger_metrics: Metrics,
    holdout_df: pd.DataFrame,
    config: GateConfig | None = None,
) -> tuple[Verdict, int | None, dict[str, float] | None]:
    """Score the current champion on ``holdout_df`` (the challenger's holdout) and gate.

    Returns (verdict, champion version or None, champion headline metrics or None).
    """
    fingerprint = data_fingerprint(holdout_df)
    champion_version = registry.alias_version(name, "champion")
    if champion_version is None:
        return evaluate_gate(challenger_metrics, None, config), None, None
    champion = registry.load(name, champion_version)
    champion_metrics = evaluate(champion, holdout_df)
    verdict = evaluate_gate(
        _with_fingerprint(challenger_metrics, fingerprint),
        _with_fingerprint(champion_metrics, fingerprint),
        config,
    )
    return verdict, champion_version, champion_metrics.headline()


def retrain(
    spec: FeatureSpec,
    registry: ModelRegistry,
    families: Iterable[str] = FAMILY_NAMES,
    seed: int = 0,
    name: str | None = None,
    source: str | Path | None = None,
    df: pd.DataFrame | None = None,
    test_size: float = 0.2,
    tune: bool = True,
    promote: bool = False,
    gate: GateConfig | None = None,
    progress: bool = False,
    device: str | None = None,
) -> RetrainReport:
    """Train every family, register each version, alias the best ``challenger``, gate it.

    The best candidate is the one with the best ``gate.primary`` on the holdout. With
    ``promote=True`` it becomes ``champion`` when the gate passes against the current champion
    scored on the same holdout; the verdict goes into the alias history.
    """
    cfg = gate or GateConfig()
    model_name = name or spec.name
    frame = df if df is not None else load_frame(spec, source)
    train_df, holdout_df = holdout_split(frame, spec, test_size, seed)
    fingerprint = data_fingerprint(holdout_df)
    trained = train_candidates(train_df, spec, families, seed, tune, progress, device)
    results = []
    for family, model in trained.items():
        metrics = evaluate(model, holdout_df)
        version = registry.register(
            model,
            model_name,
            metrics,
            holdout_fingerprint=fingerprint,
            extra={"holdout_seed": seed, "test_size": test_size},
        )
        results.append(CandidateResult(family, version, metrics, model.fit_seconds))
    sign = -1.0 if cfg.primary in LOWER_IS_BETTER else 1.0
    best = max(results, key=lambda r: sign * r.metrics.headline()[cfg.primary])
    registry.promote(
        model_name,
        best.version,
        "challenger",
        f"best {cfg.primary} of retrain ({', '.join(trained)})",
    )
    report = RetrainReport(
        name=model_name,
        seed=seed,
        holdout_fingerprint=fingerprint,
        candidates=results,
        best_version=best.version,
        best_family=best.family,
        champion_before=registry.alias_version(model_name, "champion"),
    )
    if promote:
        verdict, _, champion_metrics = gate_challenger(
            registry, model_name, best.metrics, holdout_df, cfg
        )
        report.verdict, report.champion_metrics = verdict, champion_metrics
        if verdict.promote:
            registry.promote(
                model_name, best.version, "champion", "; ".join(verdict.reasons), verdict.to_dict()
            )
            report.promoted = True
    return report


def evaluate_registered(
    registry: ModelRegistry,
    name: str,
    ref: str | int = "champion",
    seed: int | None = None,
    source: str | Path | None = None,
    test_size: float | None = None,
) -> tuple[Metrics, bool]:
    """Re-evaluate a registered version on the holdout of its own spec's data.

    ``seed``/``test_size`` default to the ones recorded at registration, so the holdout is
    rebuilt identically. Returns (metrics, same_holdout) where ``same_holdout`` says whether
    the rebuilt holdout's fingerprint equals the one stored in the metadata.
    """
    model = registry.load(name, ref)
    extra = model.metadata.get("extra", {})
    split_seed = int(seed if seed is not None else extra.get("holdout_seed", 0))
    size = float(test_size if test_size is not None else extra.get("test_size", 0.2))
    frame = load_frame(model.spec, source)
    _, holdout_df = holdout_split(frame, model.spec, size, split_seed)
    same = data_fingerprint(holdout_df) == model.metadata.get("holdout_fingerprint")
    return evaluate(model, holdout_df), same
