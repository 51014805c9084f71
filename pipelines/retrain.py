"""The retrain pipeline's pure steps: frames and models in, results out, no files.

One rule for each decision, used by the CLI (``decisionflow models train``) and the retrain
DAG alike (both run :mod:`pipelines.workdir`, which persists between these steps):

- **data**: :func:`check_training_data` names every problem or passes (the rarer class needs
  the spec's ``label.min_share`` of the rows); one seeded, stratified split
  (:func:`split_training_data`) gives the holdout every candidate and the champion share.
- **best candidate** (:func:`pick_best`): the best value of the gate metric on that holdout
  (lower is better for log loss and Brier); a candidate without a value never wins; a tie goes
  to the family listed first.
- **gate** (:func:`gate_verdict`): the champion, scored on the same holdout, must be beaten by
  more than the margin without regressing the guard metrics; no champion, or one that cannot
  score the data, means promote, unless the challenger's gate or a guard metric is NaN (never
  promoted).
- **what gets registered** (:func:`alias_for`): the best candidate only, refused or not (the
  registry keeps every verdict for audit); it becomes ``champion`` when promotion was asked
  for and the gate passed, else ``challenger``. The other candidates' holdout metrics stay in
  the run's ``evaluation.json`` and report, not in the registry.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from models.data import DataError, data_fingerprint, holdout_split, labels, load_frame
from models.gate import GateConfig, evaluate_gate
from models.metrics import LOWER_IS_BETTER, Metrics
from models.registry import ModelRegistry
from models.spec import FeatureSpec
from models.training import Scorer, TrainedModel, evaluate, train_family, tune_family

__all__ = [
    "DataValidationError",
    "alias_for",
    "check_training_data",
    "evaluate_registered",
    "fit_candidate",
    "gate_verdict",
    "holdout_metrics",
    "json_safe",
    "pick_best",
    "split_training_data",
]


class DataValidationError(ValueError):
    """The training data failed validation; the message lists every problem found."""


def json_safe(value: Any) -> Any:
    """None for a NaN or infinite float (JSON has neither), else the value."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def check_training_data(
    frame: pd.DataFrame,
    spec: FeatureSpec,
    *,
    min_rows: int = 500,
    max_null_share: float = 0.5,
    min_minority_share: float | None = None,
    origin: str = "the training data",
) -> dict[str, Any]:
    """Check columns, label, size, missing values and class balance; raise naming them all.

    The rarer class must make up at least ``min_minority_share`` of the rows (None: the spec's
    ``label.min_share``). Returns a summary (rows, label balance, worst null share) when the
    data passes.
    """
    floor = spec.label.min_share if min_minority_share is None else min_minority_share
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
            try:
                y = labels(frame, spec)
                minority = float(min(y.mean(), 1 - y.mean()))
            except DataError as exc:  # one class only: name the fix as well as the balance
                problems.append(str(exc))
                minority = 0.0
            if minority < floor:
                problems.append(
                    f"label balance {balance}: the rarer class is {minority:.1%} of rows "
                    f"(at least {floor:.1%} needed, label.min_share; positive class "
                    f"{spec.label.positive!r})"
                )
    if problems:
        raise DataValidationError(f"{origin} failed validation:\n- " + "\n- ".join(problems))
    return {
        "rows": len(frame),
        "label_balance": balance,
        "max_null_share": max(null_shares.values(), default=0.0),
    }


def split_training_data(
    frame: pd.DataFrame, spec: FeatureSpec, test_size: float = 0.2, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The one seeded, stratified train/holdout split of a run."""
    return holdout_split(frame, spec, test_size, seed)


def fit_candidate(
    train: pd.DataFrame,
    spec: FeatureSpec,
    family: str,
    params: Mapping[str, Any] | None = None,
    tune: bool = True,
    seed: int = 0,
    device: str | None = None,
) -> TrainedModel:
    """Train one family: fixed ``params`` as given, else tuned on an inner split of ``train``
    (``tune``), else the family's defaults. The holdout is never seen."""
    if params:
        return train_family(family, train, spec, dict(params), seed, device=device)
    if tune:
        return tune_family(family, train, spec, seed, device=device)
    return train_family(family, train, spec, None, seed, device=device)


def holdout_metrics(
    scorer: Scorer, holdout: pd.DataFrame, threshold: float = 0.5
) -> tuple[Metrics, dict[str, Any]]:
    """Full metrics on the holdout (hard decisions at ``threshold``), and their JSON-safe
    headline with its fingerprint."""
    metrics = evaluate(scorer, holdout, threshold=threshold)
    head: dict[str, Any] = {k: json_safe(v) for k, v in metrics.headline().items()}
    head["holdout_fingerprint"] = data_fingerprint(holdout)
    head["n_holdout"] = metrics.n
    return metrics, head


def pick_best(metrics_by_family: Mapping[str, Mapping[str, Any]], metric: str) -> str:
    """The family with the best ``metric`` (see the module docstring for the rule)."""
    best: str | None = None
    for family, metrics in metrics_by_family.items():
        value = metrics.get(metric)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        incumbent = None if best is None else metrics_by_family[best][metric]
        lower = metric in LOWER_IS_BETTER
        if incumbent is None or (value < incumbent if lower else value > incumbent):
            best = family
    if best is None:
        raise ValueError(f"no candidate has a {metric} on the holdout: {dict(metrics_by_family)}")
    return best


def gate_verdict(
    challenger: Mapping[str, Any],
    champion: Scorer | Exception | None,
    holdout: pd.DataFrame,
    config: GateConfig,
    champion_version: int | None = None,
    threshold: float = 0.5,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The gate's verdict for ``challenger`` (holdout headline) against ``champion`` scored on
    the same holdout (hard decisions at ``threshold``, as the challenger's); returns
    (verdict, champion headline or None).

    ``champion`` is None without a champion, or the exception that stopped loading it. A
    challenger with a NaN gate or guard metric is refused in every case.
    """
    alone = evaluate_gate(challenger, None, config)
    if champion is None or not alone.promote:
        return alone.to_dict(), None
    try:
        if isinstance(champion, Exception):
            raise champion
        _, head = holdout_metrics(champion, holdout, threshold)
    except Exception as exc:  # the champion cannot score this data: say so, replace it
        reason = f"champion v{champion_version} cannot score the holdout: {exc}"
        return {"promote": True, "reasons": [reason]}, None
    return evaluate_gate(challenger, head, config).to_dict(), head


def alias_for(passed: bool, promote: bool) -> str:
    """Where the registered candidate goes: ``champion`` only if asked for and passed."""
    return "champion" if promote and passed else "challenger"


def evaluate_registered(
    registry: ModelRegistry,
    name: str,
    ref: str | int = "champion",
    seed: int | None = None,
    source: str | Path | None = None,
    test_size: float | None = None,
    threshold: float = 0.5,
) -> tuple[Metrics, bool]:
    """Re-evaluate a registered version on the holdout of its own spec's data.

    ``seed``/``test_size`` default to the ones recorded at registration, so the holdout is
    rebuilt identically; hard-decision metrics use ``threshold`` (0.5 is reported too).
    Returns (metrics, same_holdout) where ``same_holdout`` says whether the rebuilt holdout's
    fingerprint equals the one stored in the metadata.
    """
    model = registry.load(name, ref)
    extra = model.metadata.get("extra", {})
    split_seed = int(seed if seed is not None else extra.get("holdout_seed", 0))
    size = float(test_size if test_size is not None else extra.get("test_size", 0.2))
    frame = load_frame(model.spec, source)
    _, holdout_df = split_training_data(frame, model.spec, size, split_seed)
    same = data_fingerprint(holdout_df) == model.metadata.get("holdout_fingerprint")
    return evaluate(model, holdout_df, threshold=threshold), same
