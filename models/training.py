"""Pure training/evaluation functions that DAG tasks and CLI commands call.

Honest protocol: the holdout is split off first and never seen by encoders, tuning or early
stopping. Hyper-parameters are chosen on an inner stratified validation split of the training
part; the chosen configuration is then refitted on the whole training part (torch: for the
number of epochs early stopping found best on the inner split).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

from models.data import data_fingerprint, holdout_split, labels, load_frame
from models.encoding import TabularEncoder
from models.family import FAMILY_NAMES, get_family
from models.metrics import Metrics, compute_metrics
from models.model import Model
from models.spec import FeatureSpec

__all__ = [
    "Scorer",
    "TrainedModel",
    "compare_families",
    "comparison_markdown",
    "evaluate",
    "train_candidates",
    "train_family",
    "tune_family",
]


class Scorer(Protocol):
    """Anything that scores a raw frame: a :class:`TrainedModel` or a registry-loaded model."""

    spec: FeatureSpec

    def score(self, df: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Positive-class probability per row."""
        ...


@dataclass
class TrainedModel(Model):
    """A model fresh from training, and how it was obtained."""

    params: dict[str, Any]
    seed: int
    train_fingerprint: str
    n_train: int
    fit_seconds: float = 0.0
    tuning: list[dict[str, Any]] = field(default_factory=list)


def train_family(
    family: str,
    train_df: pd.DataFrame,
    spec: FeatureSpec,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    valid_df: pd.DataFrame | None = None,
    progress: bool = False,
    device: str | None = None,
) -> TrainedModel:
    """Fit an encoder on ``train_df`` only, then the family with ``params``.

    ``valid_df`` (optional) is used only for early stopping (torch). ``device`` overrides the
    torch default (cuda if available); scikit-learn families ignore it.
    """
    family_cls = get_family(family)
    started = time.perf_counter()
    y = labels(train_df, spec)  # DataError (a ValueError) when it holds one class only
    encoder = TabularEncoder(spec).fit(train_df)
    train = encoder.transform(train_df)
    model = family_cls(encoder, dict(params or {}), seed)
    if device is not None:
        model.to(device)
    if valid_df is not None:
        model.fit(train, y, encoder.transform(valid_df), labels(valid_df, spec), progress)
    else:
        model.fit(train, y, progress=progress)
    return TrainedModel(
        family=family,
        spec=spec,
        encoder=encoder,
        model=model,
        params=dict(model.params),
        seed=seed,
        train_fingerprint=data_fingerprint(train_df),
        n_train=len(train_df),
        fit_seconds=time.perf_counter() - started,
    )


def evaluate(
    scorer: Scorer,
    holdout_df: pd.DataFrame,
    spec: FeatureSpec | None = None,
    threshold: float = 0.5,
) -> Metrics:
    """Score ``holdout_df`` and compute all metrics against its labels.

    Labels follow ``spec`` (default: the scorer's own spec); hard-decision metrics use
    ``threshold`` (and 0.5, always reported too).
    """
    y = labels(holdout_df, spec or scorer.spec)
    return compute_metrics(y, scorer.score(holdout_df), threshold)


def tune_family(
    family: str,
    train_df: pd.DataFrame,
    spec: FeatureSpec,
    seed: int = 0,
    search_space: Sequence[Mapping[str, Any]] | None = None,
    inner_valid_size: float = 0.2,
    metric: str = "roc_auc",
    progress: bool = False,
    device: str | None = None,
) -> TrainedModel:
    """Choose params on an inner split of ``train_df``, then refit on all of ``train_df``.

    Candidates are ``search_space`` (default: the family's own small grid) merged over the
    family defaults; ``metric`` (a :meth:`Metrics.headline` key, higher is better unless it is
    log_loss/brier) is measured on the inner validation split; a candidate whose value is NaN
    there never wins, and ``ValueError`` says so when none has a value. The returned model's
    ``tuning`` lists every candidate with its inner-validation score.
    """
    family_cls = get_family(family)
    candidates = list(search_space if search_space is not None else family_cls.search_space)
    if not candidates:
        candidates = [{}]
    inner_train, inner_valid = holdout_split(train_df, spec, inner_valid_size, seed + 1)
    lower_better = metric in ("log_loss", "brier")
    results: list[dict[str, Any]] = []
    best_i, best_score, best_model = 0, -np.inf, None
    started = time.perf_counter()
    for i, cand in enumerate(candidates):
        trained = train_family(family, inner_train, spec, cand, seed, inner_valid, False, device)
        value = evaluate(trained, inner_valid).headline()[metric]
        results.append(
            {"params": dict(cand), "valid_" + metric: value, "fit_info": trained.model.fit_info}
        )
        key = -value if lower_better else value
        if math.isfinite(key) and key > best_score:
            best_i, best_score, best_model = i, key, trained
    if best_model is None:
        y_valid = labels(inner_valid, spec)
        raise ValueError(
            f"cannot tune {family}: no candidate has a finite {metric} on the inner validation "
            f"split ({len(y_valid)} rows, {int(y_valid.sum())} positive); "
            f"{metric} needs both classes there"
        )
    final_params = dict(candidates[best_i])
    if "best_epoch" in best_model.model.fit_info and "epochs" in family_cls.default_params:
        final_params["epochs"] = max(1, int(best_model.model.fit_info["best_epoch"]))
    final = train_family(family, train_df, spec, final_params, seed, None, progress, device)
    final.tuning = results
    final.fit_seconds = time.perf_counter() - started
    return final


def train_candidates(
    train_df: pd.DataFrame,
    spec: FeatureSpec,
    families: Iterable[str] = FAMILY_NAMES,
    seed: int = 0,
    tune: bool = True,
    progress: bool = False,
    device: str | None = None,
) -> dict[str, TrainedModel]:
    """Train (tuned, unless ``tune=False``: family defaults) one model per family."""
    out: dict[str, TrainedModel] = {}
    names = list(families)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(names, desc="families", unit="family")
    for family in names:
        if bar is not None:
            bar.set_postfix(family=family)
        if tune:
            out[family] = tune_family(
                family, train_df, spec, seed, progress=progress, device=device
            )
        else:
            out[family] = train_family(family, train_df, spec, None, seed, None, progress, device)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return out


_TABLE_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "accuracy", "precision", "recall", "f1")


def compare_families(
    spec: FeatureSpec,
    families: Iterable[str] = FAMILY_NAMES,
    seed: int = 0,
    df: pd.DataFrame | None = None,
    test_size: float = 0.2,
    tune: bool = True,
    progress: bool = False,
    device: str | None = None,
    threshold: float = 0.5,
) -> pd.DataFrame:
    """Train each family on the same training part and score the same stratified holdout.

    Returns one row per family (index = family) with holdout metrics (accuracy, precision,
    recall, f1 at ``threshold``), the fit time (tuning included) and the chosen params.
    ``df`` defaults to the spec's source. The holdout fingerprint, sizes and the threshold
    are in ``table.attrs``.
    """
    frame = load_frame(spec) if df is None else df
    train_df, holdout_df = holdout_split(frame, spec, test_size, seed)
    trained = train_candidates(train_df, spec, families, seed, tune, progress, device)
    rows = []
    for name, model in trained.items():
        head = evaluate(model, holdout_df, threshold=threshold).headline()
        row: dict[str, Any] = {"family": name}
        row.update({k: head[k] for k in _TABLE_METRICS})
        row["fit_seconds"] = round(model.fit_seconds, 2)
        chosen = {k: v for k, v in model.params.items() if k in _tuned_keys(model)}
        row["params"] = ", ".join(f"{k}={v}" for k, v in sorted(chosen.items()))
        rows.append(row)
    table = pd.DataFrame(rows).set_index("family")
    table.attrs.update(
        {
            "seed": seed,
            "threshold": float(threshold),
            "spec": spec.name,
            "spec_hash": spec.hash,
            "n_train": len(train_df),
            "n_holdout": len(holdout_df),
            "holdout_fingerprint": data_fingerprint(holdout_df),
            "holdout_positive_rate": float(labels(holdout_df, spec).mean()),
        }
    )
    return table


def _tuned_keys(model: TrainedModel) -> set[str]:
    keys = {k for cand in model.tuning for k in cand["params"]}
    return keys | ({"epochs"} if "epochs" in model.params else set())


def comparison_markdown(table: pd.DataFrame, command: str, generated_at: str) -> str:
    """Render a :func:`compare_families` table as a markdown report."""
    attrs = table.attrs
    header = ["family", *_TABLE_METRICS, "fit_seconds", "params"]
    lines = [
        f"# Model comparison: {attrs.get('spec', '?')}",
        "",
        f"- generated: {generated_at}",
        f"- command: `{command}`",
        f"- seed: {attrs.get('seed')}",
        f"- spec hash: `{attrs.get('spec_hash', '')}`",
        f"- rows: {attrs.get('n_train')} train / {attrs.get('n_holdout')} holdout "
        f"(stratified; holdout positive rate {attrs.get('holdout_positive_rate', 0):.3f}; "
        f"holdout fingerprint `{str(attrs.get('holdout_fingerprint', ''))[:16]}`)",
        "- protocol: the holdout is split off first; encoders are fitted on the training part "
        "only; hyper-parameters are chosen on an inner stratified validation split of the "
        "training part (torch: early stopping there too), then refitted on the whole training "
        f"part. Threshold metrics (accuracy, precision, recall, f1) at "
        f"{float(attrs.get('threshold', 0.5)):g}. `fit_seconds` includes tuning.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 2) + ["---"]) + "|",
    ]
    for family, row in table.iterrows():
        cells = [str(family)]
        cells += [f"{float(row[m]):.4f}" for m in _TABLE_METRICS]
        cells += [f"{float(row['fit_seconds']):.1f}", f"`{row['params']}`"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
