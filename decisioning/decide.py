"""Apply a :class:`~decisioning.policy.Policy` to a scored batch: pure, vectorised, deterministic.

Order of precedence for every row:

1. hard rules, in declared order: the first whose conditions all hold decides (even when the
   model is unavailable);
2. no usable score (``scores is None``, or a NaN / out-of-[0, 1] score for that row): the
   fallback decision, reason ``MODEL_UNAVAILABLE`` (or ``SCORE_INVALID``);
3. the score bands of the first matching segment, else the default bands.

Reasons: the rule's reason code; the fallback's; or the ``top_reasons`` features with the
largest positive contribution to risk that the policy's catalogue names (ties keep feature
order), or ``SCORE_BAND`` when there are none. Only model-decided rows whose decision is in
``policy.explain_only`` (all when None) are explained, and none when ``policy.reasons`` is
``none``: the others get ``SCORE_BAND``.

:func:`decide_columns` is the implementation (column lists in, :class:`DecisionColumns` out,
the model explained once for just the rows that need it); :func:`decide_batch` is the same over
a DataFrame and precomputed contributions, returning one :class:`DecisionParts` per row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, cast

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from decisioning.columns import DecisionColumns, ReasonRow
from decisioning.conditions import ConditionInputs, Features, inputs_mask
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
    "decide_columns",
    "parts_from_columns",
    "top_contributions",
]

Explain = Callable[[NDArray[np.intp]], NDArray[np.float64]]
"""Row indices -> their contributions, shape (len(rows), len(feature_names))."""

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


def _first_match(whens: Sequence[Sequence[Condition]], inputs: ConditionInputs) -> NDArray[np.intp]:
    """Per row, the index of the first condition list that holds (-1: none)."""
    matched = np.full(inputs.n_rows, -1, dtype=np.intp)
    for k, when in enumerate(whens):
        free = matched < 0
        if not free.any():
            break
        matched[free & inputs_mask(when, inputs)] = k
    return matched


@dataclass(frozen=True, slots=True)
class _Tables:
    """Per-policy lookup tables: what each rule / band / fallback contributes to a row."""

    band_decision: NDArray[np.intp]
    """Decision index of each band, all band sets flattened (default bands first)."""
    band_threshold: NDArray[np.object_]
    band_start: NDArray[np.intp]
    """Offset of band set s + 1 (segment s; -1 the default bands) in the flat tables."""
    rule_decision: NDArray[np.intp]
    reasons: list[ReasonRow]
    """Rule reasons, then unavailable, invalid, then one band reason per decision."""


def _tables(policy: Policy) -> _Tables:
    index = {name: i for i, name in enumerate(policy.decisions)}
    band_sets = [policy.bands, *(segment.bands for segment in policy.segments)]
    flat = [band for bands in band_sets for band in bands]
    threshold = np.empty(len(flat), dtype=object)
    threshold[:] = [band_threshold(band) for band in flat]
    rule_reasons: list[ReasonRow] = [
        (rc.code, rc.text, rule.when[0].feature, None)
        for rule in policy.rules
        for rc in (rule.reason_code(),)
    ]
    fallback = policy.fallback.reason
    invalid = "Risk model returned an invalid score; decided by fallback policy"
    return _Tables(
        band_decision=np.array([index[band.decision] for band in flat], dtype=np.intp),
        band_threshold=threshold,
        band_start=np.cumsum([0, *(len(bands) for bands in band_sets[:-1])]).astype(np.intp),
        rule_decision=np.array([index[rule.decision] for rule in policy.rules], dtype=np.intp),
        reasons=[
            *rule_reasons,
            (fallback.code, fallback.text, None, None),
            (SCORE_INVALID, invalid, None, None),
            *((SCORE_BAND, f"Risk score in the {d} band", None, None) for d in policy.decisions),
        ],
    )


def _names(names: Sequence[str | None], index: NDArray[np.intp]) -> list[str | None]:
    """``names[i]`` per row; index -1 gives None."""
    table = np.empty(len(names) + 1, dtype=object)
    table[:] = [*names, None]
    return cast(list[str | None], table[index].tolist())


def _feature_reasons(
    policy: Policy,
    names: list[str],
    rows: NDArray[np.intp],
    explain: Explain,
) -> list[tuple[int, list[ReasonRow]]]:
    """(row, its top catalogued reasons) for each explained row that has any."""
    catalogue = [i for i, name in enumerate(names) if name in policy.reason_codes]
    contrib = np.asarray(explain(rows), dtype=np.float64)
    if contrib.shape != (len(rows), len(names)):
        raise ValueError(
            f"explain returned shape {contrib.shape}, expected {(len(rows), len(names))}"
        )
    sub = contrib[:, catalogue]
    top, ok = top_contributions(sub, policy.top_reasons)
    labels = [
        (rc.code, rc.text, names[c]) for c in catalogue for rc in (policy.reason_codes[names[c]],)
    ]
    # the valid picks, row-major: each row's picks are a prefix of its top list
    picked = zip(
        map(labels.__getitem__, top[ok].tolist()),
        np.take_along_axis(sub, top, axis=1)[ok].tolist(),
        strict=True,
    )
    picks: list[ReasonRow] = [(lab[0], lab[1], lab[2], v) for lab, v in picked]
    counts = ok.sum(axis=1)
    ends = np.cumsum(counts)
    return [
        (row, picks[a:b])
        for row, a, b in zip(rows.tolist(), (ends - counts).tolist(), ends.tolist(), strict=True)
        if b > a
    ]


def decide_columns(
    policy: Policy,
    features: Features,
    entity_ids: Sequence[str],
    scores: NDArray[np.floating] | Sequence[float] | None,
    explain: Explain | None,
    feature_names: Sequence[str],
) -> DecisionColumns:
    """Decide every row of a column-wise batch under ``policy``.

    ``features`` maps feature names to one value per row (absent names: missing; a DataFrame
    works too); ``entity_ids`` gives each row's entity and the batch size. ``scores`` holds one
    risk score per row, or is None when the model was unavailable. ``explain(rows)`` is called
    at most once, with the (ascending) indices of the model-decided rows that need feature
    reasons (see the module docstring), and returns their contributions, shape
    ``(len(rows), len(feature_names))``; None: band reasons only.
    """
    ids = np.empty(len(entity_ids), dtype=object)
    ids[:] = list(entity_ids)
    n = len(ids)
    names = list(feature_names)
    score_array = _as_scores(scores, n)
    with np.errstate(invalid="ignore"):
        usable = np.isfinite(score_array) & (score_array >= 0.0) & (score_array <= 1.0)
    inputs = ConditionInputs(features, ids)
    if inputs.n_rows != n:
        raise ValueError(f"entity_ids has {n} values for {inputs.n_rows} rows")
    rule_of = _first_match([rule.when for rule in policy.rules], inputs)
    segment_of = _first_match([segment.when for segment in policy.segments], inputs)
    t = _tables(policy)

    band_of = np.zeros(n, dtype=np.intp)
    safe_scores = np.where(usable, score_array, 0.0)
    band_sets = [policy.bands, *(segment.bands for segment in policy.segments)]
    for s in range(-1, len(policy.segments)):
        rows = segment_of == s
        if rows.any():
            band_of[rows] = band_index(band_sets[s + 1], safe_scores[rows])
    flat_band = t.band_start[segment_of + 1] + band_of

    ruled = rule_of >= 0
    model = ~ruled & usable
    fallback = ~ruled & ~usable
    decision = t.band_decision[flat_band]
    decision[ruled] = t.rule_decision[rule_of[ruled]]
    decision[fallback] = policy.decisions.index(policy.fallback.decision)

    n_rules = len(policy.rules)
    unavailable = np.full(n, scores is None) | np.isnan(score_array)
    reason_of = np.where(ruled, rule_of, n_rules + decision + 2)
    reason_of[fallback] = np.where(unavailable, n_rules, n_rules + 1)[fallback]
    reasons = [[t.reasons[i]] for i in reason_of.tolist()]

    wanted = model.copy()
    if policy.explain_only is not None:
        explained = [policy.decisions.index(d) for d in policy.explain_only]
        wanted &= np.isin(decision, explained)
    catalogued = any(name in policy.reason_codes for name in names)
    if explain is not None and policy.reasons != "none" and catalogued and policy.top_reasons > 0:
        rows = np.flatnonzero(wanted).astype(np.intp)
        if rows.size:
            for row, picked in _feature_reasons(policy, names, rows, explain):
                reasons[row] = picked

    score_out = score_array.astype(object)
    score_out[~usable] = None
    threshold = t.band_threshold[flat_band]
    threshold[~model] = None
    source = np.where(ruled, 2, np.where(model, 0, 1))
    return DecisionColumns(
        decision=cast(list[str], _names(policy.decisions, decision)),
        score=score_out.tolist(),
        threshold=threshold.tolist(),
        reasons=reasons,
        rule=_names([rule.name for rule in policy.rules], rule_of),
        segment=_names([segment.name for segment in policy.segments], segment_of),
        source=cast(list[str], _names(["model", "fallback", "rule"], source)),
    )


def parts_from_columns(columns: DecisionColumns) -> list[DecisionParts]:
    """One :class:`DecisionParts` per row of ``columns`` (reasons become ``Reason`` objects)."""
    shared: dict[ReasonRow, Reason] = {}

    def reason(row: ReasonRow) -> Reason:
        code, text, feature, contribution = row
        if contribution is not None:
            return Reason(code=code, text=text, feature=feature, contribution=contribution)
        if row not in shared:
            shared[row] = Reason(code=code, text=text, feature=feature)
        return shared[row]

    return [
        DecisionParts(d, s, th, tuple(reason(r) for r in rs), rule, seg, cast(Source, src))
        for d, s, th, rs, rule, seg, src in zip(
            columns.decision, columns.score, columns.threshold, columns.reasons,
            columns.rule, columns.segment, columns.source, strict=True,
        )
    ]  # fmt: skip


def decide_batch(
    policy: Policy,
    features: pd.DataFrame,
    scores: NDArray[np.floating] | Sequence[float] | None,
    contributions: NDArray[np.floating] | None,
    feature_names: Sequence[str],
    entity_ids: Sequence[str] | NDArray[np.object_],
) -> list[DecisionParts]:
    """Decide every row of a batch under ``policy``: :func:`decide_columns` over a frame.

    ``features`` has one row per event (columns = raw feature names; absent columns count as
    missing). ``scores`` holds one risk score per row, or is None when the model was
    unavailable or timed out. ``contributions`` (optional) has shape ``(n, len(feature_names))``:
    each feature's contribution to the risk score. ``entity_ids`` gives each row's entity
    (conditions on ``entity_id`` use it). Returns one :class:`DecisionParts` per row, in order.
    """
    n = len(features)
    ids = list(entity_ids)
    if len(ids) != n:
        raise ValueError(f"entity_ids has {len(ids)} values for {n} rows")
    explain: Explain | None = None
    if contributions is not None:
        contrib = np.asarray(contributions, dtype=np.float64)
        expected = (n, len(feature_names))
        if contrib.shape != expected:
            raise ValueError(f"contributions has shape {contrib.shape}, expected {expected}")

        def explain(rows: NDArray[np.intp]) -> NDArray[np.float64]:
            return contrib[rows]

    columns = decide_columns(policy, features, ids, scores, explain, feature_names)
    return parts_from_columns(columns)
