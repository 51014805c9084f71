"""Cost-optimal score cut-offs for a three-way policy (approve < t1 <= review < t2 <= decline).

Value of one applicant under each decision (``y`` = 1 for the positive, "bad" class):

* approve: ``gain_good_approved`` if good, ``-loss_bad_approved`` if bad;
* review:  ``-review_cost`` plus the reviewer's outcome: a good is approved
  (``gain_good_approved``); a bad is declined with probability ``review_catch_rate``
  (``value_declined``), else approved (``-loss_bad_approved``);
* decline: ``value_declined``.

:func:`optimal_cutoffs` maximises the mean value over an evaluation set exactly: scores are
sorted once, values are prefix-summed, and the best ``t1`` for every ``t2`` is a running
maximum, so the search is O(n log n) over all cut points between distinct scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, Field

from decisioning.policy import Policy, parse_policy

__all__ = [
    "Costs",
    "Cutoffs",
    "apply_cutoffs",
    "decision_values",
    "expected_value",
    "optimal_cutoffs",
]

NonNegative = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]


class Costs(BaseModel):
    """Business value of each (decision, outcome) pair, in one currency unit per applicant."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gain_good_approved: NonNegative
    loss_bad_approved: NonNegative
    review_cost: NonNegative
    value_declined: Annotated[float, Field(allow_inf_nan=False)] = 0.0
    review_catch_rate: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0


@dataclass(frozen=True)
class Cutoffs:
    """The value-maximising cut-offs and the curve behind them.

    ``approve_below`` (t1) and ``decline_from`` (t2): approve ``score < t1``, review
    ``t1 <= score < t2``, decline ``score >= t2``; ``t1 == t2`` means no review band.
    ``curve`` has one row per candidate threshold: ``threshold``, ``below_rate`` (share of the
    evaluation set below it), ``value_single_cut`` (approve below / decline at or above, no
    review), ``value_vary_t1`` (t2 fixed at the optimum) and ``value_vary_t2`` (t1 fixed);
    all values are means per applicant, NaN where the pair would be reversed.
    """

    approve_below: float
    decline_from: float
    expected_value: float
    approve_rate: float
    review_rate: float
    decline_rate: float
    single_cut_threshold: float
    single_cut_value: float
    n: int
    curve: pd.DataFrame


def decision_values(
    bad: NDArray[np.bool_], costs: Costs
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Per-applicant value of approve, review and decline given the true class."""
    approve = np.where(bad, -costs.loss_bad_approved, costs.gain_good_approved)
    caught = costs.review_catch_rate
    review_bad = caught * costs.value_declined - (1.0 - caught) * costs.loss_bad_approved
    review = np.where(bad, review_bad, costs.gain_good_approved) - costs.review_cost
    decline = np.full(bad.shape, costs.value_declined, dtype=np.float64)
    return approve.astype(np.float64), review.astype(np.float64), decline


def _prepare(
    labels: ArrayLike, scores: ArrayLike, positive_label: Any
) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    score_array = np.asarray(scores, dtype=np.float64).reshape(-1)
    label_array = np.asarray(labels).reshape(-1)
    if label_array.shape != score_array.shape:
        raise ValueError(f"{label_array.shape[0]} labels for {score_array.shape[0]} scores")
    if score_array.size == 0:
        raise ValueError("need at least one scored, labelled example")
    if not (
        np.isfinite(score_array).all() and (score_array >= 0).all() and (score_array <= 1).all()
    ):
        raise ValueError("scores must be finite and within [0, 1]")
    return np.asarray(label_array == positive_label, dtype=bool), score_array


def expected_value(
    labels: ArrayLike,
    scores: ArrayLike,
    costs: Costs,
    approve_below: float,
    decline_from: float,
    *,
    positive_label: Any = 1,
) -> float:
    """Mean value per applicant of the policy approve ``< t1`` / review / decline ``>= t2``."""
    if approve_below > decline_from:
        raise ValueError("approve_below must not exceed decline_from")
    bad, s = _prepare(labels, scores, positive_label)
    approve, review, decline = decision_values(bad, costs)
    value = np.where(s < approve_below, approve, np.where(s < decline_from, review, decline))
    return float(value.mean())


def _cut_thresholds(
    sorted_scores: NDArray[np.float64], cuts: NDArray[np.intp]
) -> NDArray[np.float64]:
    """Threshold for cut position k (rows [0, k) below): midway between neighbouring scores."""
    n = sorted_scores.shape[0]
    lower = np.where(cuts > 0, sorted_scores[np.maximum(cuts - 1, 0)], 0.0)
    upper = np.where(cuts < n, sorted_scores[np.minimum(cuts, n - 1)], 1.0)
    mid = lower + (upper - lower) / 2.0
    # rounding may land on the lower neighbour: the upper one then splits the same way
    mid = np.where((cuts > 0) & (mid <= lower), upper, mid)
    return np.where(cuts == 0, 0.0, mid)


def optimal_cutoffs(
    labels: ArrayLike,
    scores: ArrayLike,
    costs: Costs,
    *,
    positive_label: Any = 1,
) -> Cutoffs:
    """Cut-offs ``t1 <= t2`` that maximise the mean value on an evaluation set.

    ``labels`` are compared with ``positive_label`` (the "bad" class, e.g. 1 or ``"bad"``);
    ``scores`` are risk scores in [0, 1] (HIGH = risky). Candidate cut-offs lie midway between
    distinct scores (0.0 and the point between the top score and 1.0 at the ends; a top score
    of exactly 1.0 can never be approved, as in a policy's closed last band). Ties in value go
    to the lowest cut-offs.
    """
    bad, s = _prepare(labels, scores, positive_label)
    order = np.argsort(s, kind="stable")
    s_sorted = s[order]
    approve, review, decline = (v[order] for v in decision_values(bad, costs))
    n = s_sorted.shape[0]
    zero = np.zeros(1)
    pa = np.concatenate([zero, np.cumsum(approve)])
    pr = np.concatenate([zero, np.cumsum(review)])
    pd_ = np.concatenate([zero, np.cumsum(decline)])

    # allowed cut positions k: between distinct scores, plus both ends (not above a score of 1.0)
    boundaries = np.flatnonzero(s_sorted[1:] > s_sorted[:-1]) + 1
    ends = [0] + ([n] if s_sorted[-1] < 1.0 else [])
    cuts = np.unique(np.concatenate([boundaries, np.asarray(ends)])).astype(np.intp)

    head = pa[cuts] - pr[cuts]  # value of k1, up to the part shared by all k1
    running = np.maximum.accumulate(head)
    is_new = head > np.concatenate([[-np.inf], running[:-1]])
    best_k1_at = np.maximum.accumulate(np.where(is_new, np.arange(cuts.size), 0))
    tail = pr[cuts] + pd_[n] - pd_[cuts]  # value of k2
    pair_value = running + tail
    j2 = int(np.argmax(pair_value))
    j1 = int(best_k1_at[j2])
    k1, k2 = int(cuts[j1]), int(cuts[j2])

    thresholds = _cut_thresholds(s_sorted, cuts)
    single = pa[cuts] + pd_[n] - pd_[cuts]
    js = int(np.argmax(single))
    vary_t1 = np.where(cuts <= k2, pa[cuts] + pr[k2] - pr[cuts] + pd_[n] - pd_[k2], np.nan)
    vary_t2 = np.where(cuts >= k1, pa[k1] + pr[cuts] - pr[k1] + pd_[n] - pd_[cuts], np.nan)
    curve = pd.DataFrame(
        {
            "threshold": thresholds,
            "below_rate": cuts / n,
            "value_single_cut": single / n,
            "value_vary_t1": vary_t1 / n,
            "value_vary_t2": vary_t2 / n,
        }
    )
    return Cutoffs(
        approve_below=float(thresholds[j1]),
        decline_from=float(thresholds[j2]),
        expected_value=float(pair_value[j2] / n),
        approve_rate=k1 / n,
        review_rate=(k2 - k1) / n,
        decline_rate=(n - k2) / n,
        single_cut_threshold=float(thresholds[js]),
        single_cut_value=float(single[js] / n),
        n=n,
        curve=curve,
    )


def apply_cutoffs(
    policy: Policy,
    approve_below: float,
    decline_from: float,
    *,
    version: str,
    segment: str | None = None,
    decisions: Sequence[str] = ("approve", "review", "decline"),
    description: str | None = None,
) -> Policy:
    """A new policy version whose default bands (or ``segment``'s bands) use the cut-offs.

    Bands become ``[0, t1)`` approve, ``[t1, t2)`` review, ``[t2, 1]`` decline (names from
    ``decisions``); empty bands are dropped. Everything else is kept. The result is fully
    validated (raises :class:`~decisioning.policy.PolicyError`); write it with
    :func:`decisioning.policy.save_policy`.
    """
    if not 0.0 <= approve_below <= decline_from <= 1.0:
        raise ValueError("need 0 <= approve_below <= decline_from <= 1")
    if len(decisions) != 3:
        raise ValueError("decisions names the approve, review and decline decisions")
    edges = [0.0, approve_below, decline_from, 1.0]
    bands = [
        {"decision": name, "from": lo, "to": hi}
        for name, lo, hi in zip(decisions, edges[:-1], edges[1:], strict=True)
        if hi > lo
    ]
    data = policy.model_dump(mode="json", by_alias=True)
    data["version"] = version
    if description is not None:
        data["description"] = description
    if segment is None:
        data["bands"] = bands
    else:
        names = [s["name"] for s in data["segments"]]
        if segment not in names:
            raise ValueError(f"policy has no segment {segment!r} (segments: {names})")
        data["segments"][names.index(segment)]["bands"] = bands
    return parse_policy(data, source=f"policy {policy.name} v{version}")
