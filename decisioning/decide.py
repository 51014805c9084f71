"""Apply a :class:`~decisioning.policy.Policy` to a scored batch: pure, vectorised, deterministic.

Order of precedence for every row:

1. hard rules, in declared order: the first whose conditions all hold decides (even when the
   model is unavailable);
2. no usable score (``scores is None``, or a NaN / out-of-[0, 1] score for that row): the
   fallback decision, reason ``MODEL_UNAVAILABLE`` (or ``SCORE_INVALID``);
3. the score bands of the first matching segment, else the default bands.

Reasons: the rule's reason code; the fallback's; or the ``top_reasons`` features with the
largest positive contribution to risk that the policy's catalogue names (ties keep feature
order), or ``SCORE_BAND`` when there are none.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from decisioning.conditions import conditions_mask
from decisioning.contracts import Reason
from decisioning.policy import Band, Condition, Policy

__all__ = [
    "SCORE_BAND",
    "SCORE_INVALID",
    "DecisionParts",
    "Source",
    "band_index",
    "band_threshold",
    "decide_batch",
    "top_contributions",
]

Source = Literal["rule", "model", "fallback"]

#: Reason code when the model decided but no catalogued feature raised the risk.
SCORE_BAND = "SCORE_BAND"
#: Reason code when the model returned NaN or a score outside [0, 1] for a row.
SCORE_INVALID = "SCORE_INVALID"


@dataclass(frozen=True, slots=True)
class DecisionParts:
    """The policy's part of one decision (the rest of the record comes from the worker)."""

    decision: str
    score: float | None
    """The score to record: None when no usable score existed for the row."""
    threshold: float | None
    """The band edge the score was compared with; None when a rule or the fallback decided."""
    reasons: tuple[Reason, ...]
    rule: str | None
    segment: str | None
    """The segment the entity falls in (None: default bands)."""
    source: Source


def band_index(bands: Sequence[Band], scores: NDArray[np.float64]) -> NDArray[np.intp]:
    """Index of the band each score falls in (``[from, to)``, last band ``[from, 1]``).

    Scores must be finite and in [0, 1]; the result for other values is clipped to a band.
    """
    lowers = np.array([band.lower for band in bands], dtype=np.float64)
    index = np.searchsorted(lowers, scores, side="right") - 1
    return np.clip(index, 0, len(bands) - 1).astype(np.intp)


def band_threshold(band: Band) -> float | None:
    """The cut-off a score in ``band`` was compared with.

    The band's lower edge when it is above 0 (the score reached it), else its upper edge (the
    score stayed below it); None for a single band covering [0, 1].
    """
    if band.lower > 0.0:
        return band.lower
    if band.upper < 1.0:
        return band.upper
    return None


def top_contributions(
    contributions: NDArray[np.float64], k: int
) -> tuple[NDArray[np.intp], NDArray[np.bool_]]:
    """Per row, the column indices of the ``k`` largest positive finite contributions.

    Returns ``(index, valid)`` of shape ``(n, min(k, n_columns))``; ``valid`` is False where the
    contribution is not positive. Ties keep column order (stable sort).
    """
    m = contributions.shape[1]
    k = min(k, m)
    keyed = np.where(np.isfinite(contributions) & (contributions > 0), contributions, -np.inf)
    order = np.argsort(-keyed, axis=1, kind="stable")[:, :k]
    chosen = np.take_along_axis(keyed, order, axis=1)
    return order.astype(np.intp), np.isfinite(chosen)


def _as_scores(
    scores: NDArray[np.floating] | Sequence[float] | None, n: int
) -> NDArray[np.float64]:
    if scores is None:
        return np.full(n, np.nan)
    array = np.asarray(scores, dtype=np.float64).reshape(-1)
    if array.shape[0] != n:
        raise ValueError(f"scores has {array.shape[0]} values for {n} rows")
    return array


def _first_match(
    whens: Sequence[Sequence[Condition]], features: pd.DataFrame, ids: NDArray[np.object_]
) -> NDArray[np.intp]:
    """Per row, the index of the first condition list that holds (-1: none)."""
    matched = np.full(len(features), -1, dtype=np.intp)
    for k, when in enumerate(whens):
        free = matched < 0
        if not free.any():
            break
        matched[free & conditions_mask(when, features, ids)] = k
    return matched


def _catalogue_reasons(
    policy: Policy, names: list[str], contrib: NDArray[np.float64] | None
) -> Callable[[int], tuple[Reason, ...]]:
    """Row -> its top reasons: the largest contributions among the catalogue's features."""
    catalogue_cols = [i for i, name in enumerate(names) if name in policy.reason_codes]
    if contrib is None or not catalogue_cols or policy.top_reasons <= 0:
        return lambda _row: ()
    sub = contrib[:, catalogue_cols]
    top_idx, top_ok = top_contributions(sub, policy.top_reasons)
    top_rows, ok_rows, cat_values = top_idx.tolist(), top_ok.tolist(), sub.tolist()
    cat_names = [names[c] for c in catalogue_cols]
    cat_codes = [policy.reason_codes[name] for name in cat_names]

    def reasons(row: int) -> tuple[Reason, ...]:
        picked = []
        values = cat_values[row]
        for j, ok in zip(top_rows[row], ok_rows[row], strict=True):
            if not ok:
                break
            rc = cat_codes[j]
            picked.append(
                Reason(code=rc.code, text=rc.text, feature=cat_names[j], contribution=values[j])
            )
        return tuple(picked)

    return reasons


def _check_inputs(
    n: int,
    scores: NDArray[np.floating] | Sequence[float] | None,
    contributions: NDArray[np.floating] | None,
    n_features: int,
    entity_ids: Sequence[str] | NDArray[np.object_],
) -> tuple[NDArray[np.object_], NDArray[np.float64], NDArray[np.float64] | None]:
    ids = np.asarray(list(entity_ids), dtype=object)
    if ids.shape[0] != n:
        raise ValueError(f"entity_ids has {ids.shape[0]} values for {n} rows")
    contrib: NDArray[np.float64] | None = None
    if contributions is not None:
        contrib = np.asarray(contributions, dtype=np.float64)
        if contrib.shape != (n, n_features):
            raise ValueError(f"contributions has shape {contrib.shape}, expected {(n, n_features)}")
    return ids, _as_scores(scores, n), contrib


def decide_batch(
    policy: Policy,
    features: pd.DataFrame,
    scores: NDArray[np.floating] | Sequence[float] | None,
    contributions: NDArray[np.floating] | None,
    feature_names: Sequence[str],
    entity_ids: Sequence[str] | NDArray[np.object_],
) -> list[DecisionParts]:
    """Decide every row of a batch under ``policy``.

    ``features`` has one row per event (columns = raw feature names; absent columns count as
    missing). ``scores`` holds one risk score per row, or is None when the model was
    unavailable or timed out. ``contributions`` (optional) has shape ``(n, len(feature_names))``:
    each feature's contribution to the risk score. ``entity_ids`` gives each row's entity
    (conditions on ``entity_id`` use it). Returns one :class:`DecisionParts` per row, in order.

    Order of precedence: (1) hard rules, first match wins; (2) no usable score -> fallback;
    (3) the band of the row's segment (first matching segment, else the default bands), with
    reasons from the catalogue's largest contributions (else the band itself as the reason).
    """
    n = len(features)
    names = list(feature_names)
    ids, score_array, contrib = _check_inputs(n, scores, contributions, len(names), entity_ids)
    usable = np.isfinite(score_array) & (score_array >= 0.0) & (score_array <= 1.0)
    rule_of = _first_match([rule.when for rule in policy.rules], features, ids)
    segment_of = _first_match([segment.when for segment in policy.segments], features, ids)
    band_of = np.zeros(n, dtype=np.intp)
    safe_scores = np.where(usable, score_array, 0.0)
    band_sets = [policy.bands, *(segment.bands for segment in policy.segments)]
    for s in range(-1, len(policy.segments)):
        rows = segment_of == s
        if rows.any():
            band_of[rows] = band_index(band_sets[s + 1], safe_scores[rows])
    return _assemble(
        policy,
        band_sets,
        _catalogue_reasons(policy, names, contrib),
        rule_of.tolist(),
        segment_of.tolist(),
        band_of.tolist(),
        score_array,
        usable,
        scores_missing=scores is None,
    )


def _assemble(
    policy: Policy,
    band_sets: list[list[Band]],
    top_reasons: Callable[[int], tuple[Reason, ...]],
    rule_of: list[int],
    segment_of: list[int],
    band_of: list[int],
    score_array: NDArray[np.float64],
    usable: NDArray[np.bool_],
    *,
    scores_missing: bool,
) -> list[DecisionParts]:
    """One :class:`DecisionParts` per row from the rule, segment and band each row matched."""
    rule_reasons = [
        Reason(code=rc.code, text=rc.text, feature=rule.when[0].feature)
        for rule in policy.rules
        for rc in (rule.reason_code(),)
    ]
    fallback = policy.fallback
    unavailable = (Reason(code=fallback.reason.code, text=fallback.reason.text),)
    invalid = (
        Reason(
            code=SCORE_INVALID,
            text="Risk model returned an invalid score; decided by fallback policy",
        ),
    )
    band_reasons = {
        decision: (Reason(code=SCORE_BAND, text=f"Risk score in the {decision} band"),)
        for decision in policy.decisions
    }
    segment_names = [segment.name for segment in policy.segments]
    thresholds = [[band_threshold(band) for band in bands] for bands in band_sets]
    nan_rows = np.isnan(score_array).tolist()
    scores_l, usable_l = score_array.tolist(), usable.tolist()
    out: list[DecisionParts] = []
    append = out.append
    for i, (r, seg, b) in enumerate(zip(rule_of, segment_of, band_of, strict=True)):
        segment_name = segment_names[seg] if seg >= 0 else None
        row_score = scores_l[i] if usable_l[i] else None
        if r >= 0:
            rule = policy.rules[r]
            append(
                DecisionParts(
                    rule.decision, row_score, None, (rule_reasons[r],), rule.name, segment_name,
                    "rule",
                )
            )  # fmt: skip
            continue
        if row_score is None:
            why = unavailable if scores_missing or nan_rows[i] else invalid
            append(
                DecisionParts(fallback.decision, None, None, why, None, segment_name, "fallback")
            )
            continue
        band = band_sets[seg + 1][b]
        append(
            DecisionParts(
                band.decision, row_score, thresholds[seg + 1][b],
                top_reasons(i) or band_reasons[band.decision], None, segment_name, "model",
            )
        )  # fmt: skip
    return out
