"""``decide_columns`` (and ``decide_batch``, now a wrapper of it) against a frozen copy of the
row-loop ``decide_batch`` it replaced, over generated batches; ``explain`` is called once, for
the rows ``explain_only`` names."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from decisioning.columns import DecisionColumns
from decisioning.contracts import Reason
from decisioning.decide import (
    SCORE_BAND,
    SCORE_INVALID,
    DecisionParts,
    band_index,
    band_threshold,
    decide_batch,
    decide_columns,
    parts_from_columns,
    top_contributions,
)
from decisioning.policy import (
    ENTITY_ID,
    Band,
    Condition,
    Policy,
    PolicyError,
    load_policy,
    parse_policy,
)

# --------------------------------------------------------------- frozen reference (do not edit)
_ref_Key = tuple[str, object]


def _ref_column_values(
    features: pd.DataFrame, name: str, entity_ids: NDArray[np.object_]
) -> NDArray[np.object_]:
    """The values of ``name`` for every row as an object array (``entity_id`` is reserved)."""
    if name == ENTITY_ID:
        return entity_ids
    if name in features.columns:
        return features[name].to_numpy(dtype=object)
    return np.full(len(features), None, dtype=object)


def _ref_missing(values: NDArray[np.object_]) -> NDArray[np.bool_]:
    return np.asarray(pd.isna(values), dtype=bool)


def _ref_numeric(values: NDArray[np.object_], missing: NDArray[np.bool_]) -> NDArray[np.float64]:
    out = np.full(len(values), np.nan, dtype=np.float64)
    for i, value in enumerate(values):
        if (
            not missing[i]
            and isinstance(value, int | float | np.number)
            and not isinstance(value, bool | np.bool_)
        ):
            out[i] = float(value)
    return out


def _ref_key(value: object) -> _ref_Key | None:
    if isinstance(value, bool | np.bool_):
        return ("bool", bool(value))
    if isinstance(value, int | float | np.number):
        return ("num", float(value))
    if isinstance(value, str):
        return ("str", value)
    return None


def _ref_member(
    values: NDArray[np.object_], missing: NDArray[np.bool_], wanted: set[_ref_Key]
) -> NDArray[np.bool_]:
    strings = {k[1] for k in wanted if k[0] == "str"}
    return np.fromiter(  # plain strings (the common case) skip the key tuple
        (
            v in strings if type(v) is str else not m and _ref_key(v) in wanted
            for v, m in zip(values.tolist(), missing.tolist(), strict=True)
        ),
        dtype=bool,
        count=len(values),
    )


def _ref_condition_mask(
    condition: Condition, features: pd.DataFrame, entity_ids: NDArray[np.object_]
) -> NDArray[np.bool_]:
    """Boolean mask of the rows where ``condition`` holds."""
    values = _ref_column_values(features, condition.feature, entity_ids)
    missing = _ref_missing(values)
    op, target = condition.op, condition.value
    if op == "is_missing":
        return missing if target is None or target is True else ~missing
    if op in ("<", "<=", ">", ">="):
        assert isinstance(target, int | float)
        column = features.get(condition.feature) if condition.feature != ENTITY_ID else None
        if (
            column is not None
            and pd.api.types.is_numeric_dtype(column.dtype)
            and not pd.api.types.is_bool_dtype(column.dtype)
        ):
            numbers = column.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            numbers = _ref_numeric(values, missing)
        with np.errstate(invalid="ignore"):
            if op == "<":
                return numbers < target
            if op == "<=":
                return numbers <= target
            if op == ">":
                return numbers > target
            return numbers >= target
    targets: Sequence[object] = target if isinstance(target, list) else [target]
    wanted = {k for k in (_ref_key(t) for t in targets) if k is not None}
    hit = _ref_member(values, missing, wanted)
    if op in ("==", "in"):
        return hit
    return ~hit & ~missing  # "!=" and "not_in"


def _ref_conditions_mask(
    conditions: Sequence[Condition], features: pd.DataFrame, entity_ids: NDArray[np.object_]
) -> NDArray[np.bool_]:
    """Rows where all ``conditions`` hold (logical AND)."""
    mask = np.ones(len(features), dtype=bool)
    for condition in conditions:
        mask &= _ref_condition_mask(condition, features, entity_ids)
    return mask


def _ref_as_scores(
    scores: NDArray[np.floating] | Sequence[float] | None, n: int
) -> NDArray[np.float64]:
    if scores is None:
        return np.full(n, np.nan)
    array = np.asarray(scores, dtype=np.float64).reshape(-1)
    if array.shape[0] != n:
        raise ValueError(f"scores has {array.shape[0]} values for {n} rows")
    return array


def _ref_first_match(
    whens: Sequence[Sequence[Condition]], features: pd.DataFrame, ids: NDArray[np.object_]
) -> NDArray[np.intp]:
    """Per row, the index of the first condition list that holds (-1: none)."""
    matched = np.full(len(features), -1, dtype=np.intp)
    for k, when in enumerate(whens):
        free = matched < 0
        if not free.any():
            break
        matched[free & _ref_conditions_mask(when, features, ids)] = k
    return matched


def _ref_catalogue_reasons(
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


def _ref_check_inputs(
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
    return ids, _ref_as_scores(scores, n), contrib


def _ref_decide_batch(
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
    ids, score_array, contrib = _ref_check_inputs(n, scores, contributions, len(names), entity_ids)
    usable = np.isfinite(score_array) & (score_array >= 0.0) & (score_array <= 1.0)
    rule_of = _ref_first_match([rule.when for rule in policy.rules], features, ids)
    segment_of = _ref_first_match([segment.when for segment in policy.segments], features, ids)
    band_of = np.zeros(n, dtype=np.intp)
    safe_scores = np.where(usable, score_array, 0.0)
    band_sets = [policy.bands, *(segment.bands for segment in policy.segments)]
    for s in range(-1, len(policy.segments)):
        rows = segment_of == s
        if rows.any():
            band_of[rows] = band_index(band_sets[s + 1], safe_scores[rows])
    return _ref_assemble(
        policy,
        band_sets,
        _ref_catalogue_reasons(policy, names, contrib),
        rule_of.tolist(),
        segment_of.tolist(),
        band_of.tolist(),
        score_array,
        usable,
        scores_missing=scores is None,
    )


def _ref_assemble(
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


# ------------------------------------------------------------------------------ policies
NAMES = [
    "Seniority", "Home", "Time", "Age", "Marital", "Records", "Job", "Expenses", "Income",
    "Assets", "Debt", "Amount", "Price",
]  # fmt: skip
"""The credit spec's features: the columns of the contributions."""

HANDMADE = parse_policy(
    {
        "name": "hand",
        "version": "1",
        "decisions": ["approve", "review", "decline", "refer"],
        "rules": [
            {"name": "blocklist", "decision": "decline",
             "when": {"feature": "entity_id", "op": "in", "value": ["bad-1"]},
             "reason": {"code": "H01", "text": "Blocklisted"}},
            {"name": "big", "decision": "review",
             "when": {"feature": "Amount", "op": ">", "value": 4000}},
            {"name": "huge", "decision": "decline",
             "when": {"feature": "Amount", "op": ">", "value": 8000}},
            {"name": "records_low_income", "decision": "refer",
             "when": [{"feature": "Records", "op": "==", "value": "yes"},
                      {"feature": "Income", "op": "<", "value": 60}]},
            {"name": "odd_x", "decision": "refer",
             "when": {"feature": "x", "op": "in", "value": [2, "2", True]}},
        ],
        "bands": [
            {"decision": "approve", "from": 0.0, "to": 0.25},
            {"decision": "review", "from": 0.25, "to": 0.5},
            {"decision": "decline", "from": 0.5, "to": 1.0},
        ],
        "segments": [
            {"name": "renters", "when": {"feature": "Home", "op": "==", "value": "rent"},
             "bands": [{"decision": "approve", "from": 0.0, "to": 0.2},
                       {"decision": "review", "from": 0.2, "to": 0.45},
                       {"decision": "decline", "from": 0.45, "to": 1.0}]},
            {"name": "no_job", "when": [{"feature": "Job", "op": "is_missing"},
                                        {"feature": "Age", "op": "<=", "value": 30}],
             "bands": [{"decision": "refer", "from": 0.0, "to": 1.0}]},
            {"name": "not_x",
             "when": [{"feature": "x", "op": "!=", "value": 1},
                      {"feature": "Marital", "op": "not_in", "value": ["married", 3]},
                      {"feature": "Debt", "op": "is_missing", "value": False}],
             "bands": [{"decision": "approve", "from": 0.0, "to": 0.6},
                       {"decision": "decline", "from": 0.6, "to": 1.0}]},
        ],
        "fallback": {"decision": "review"},
        "reason_codes": {
            "Amount": {"code": "R12", "text": "High requested amount"},
            "Income": {"code": "R09", "text": "Low income"},
            "Seniority": {"code": "R01", "text": "Short employment history"},
            "Home": {"code": "R02", "text": "Housing situation"},
        },
        "top_reasons": 2,
    }
)  # fmt: skip

POLICIES = {
    "handmade": HANDMADE,
    "credit_v1": load_policy("credit_v1", known_features=NAMES),
    "credit_v2_conservative": load_policy("credit_v2_conservative", known_features=NAMES),
}


def explain_all(policy: Policy) -> Policy:
    """The policy as the reference applies it: every model row explained."""
    return policy.model_copy(update={"explain_only": None, "reasons": "gradient_x_input"})


# ------------------------------------------------------------------------------ strategies
_NUMBER = st.one_of(
    st.integers(0, 10_000),
    st.floats(-1e4, 1e5, allow_nan=False),
    st.sampled_from([3000, 4000, 4000.0, 4000.5, 8000, 8001, 30, 30.0, 59.9, 60, 2**53 + 1]),
)
_CATEGORY = st.sampled_from(["rent", "owner", "parents", "Rent", "married", "single", ""])
_SCALAR = st.one_of(
    st.booleans(), st.sampled_from([1, 2, 2.0, 1.0, "2", "1", 0, "x"]), _NUMBER, _CATEGORY
)
_KINDS: dict[str, list[st.SearchStrategy[Any]]] = {
    "number": [st.integers(0, 10_000), _NUMBER],
    "category": [_CATEGORY, _CATEGORY | st.integers(0, 3)],
    "boolean": [st.booleans(), st.sampled_from(["yes", "no"]), st.booleans() | st.just("yes")],
    "any": [_SCALAR],
}
_COLUMN_KIND = {"Home": "category", "Marital": "category", "Job": "category"}
_COLUMN_KIND |= {"Records": "boolean", "x": "any"}
_SCORE = st.one_of(
    st.floats(0.0, 1.0),
    st.sampled_from([0.0, 1.0, 0.2, 0.25, np.nextafter(0.25, 0.0), 0.45, 0.5, 0.6]),
    st.sampled_from([np.nan, np.inf, -np.inf, -0.1, 1.5, 1.0000001]),
)
_CONTRIBUTION = st.one_of(
    st.floats(-2.0, 2.0),
    st.sampled_from([0.0, -0.0, 0.1, 0.1, 0.3, np.nan, np.inf, -np.inf, 5e-324]),
)
_IDS = st.sampled_from(["bad-1", "cust-blocked-0001", "cust-blocked-0002", "c1", "c2"])


@st.composite
def batches(draw: st.DrawFn) -> dict[str, Any]:
    """Columns, the same rows as records, entity ids, scores and contributions."""
    n = draw(st.integers(0, 25))
    columns: dict[str, list[Any]] = {}
    for name in [*NAMES, "x"]:
        kind = draw(st.sampled_from(_KINDS[_COLUMN_KIND.get(name, "number")]))
        if draw(st.booleans()):
            kind = st.none() | kind
        columns[name] = draw(st.lists(kind, min_size=n, max_size=n))
    records = [
        {k: v[i] for k, v in columns.items() if v[i] is not None or draw(st.booleans())}
        for i in range(n)
    ]
    scores = (
        None if draw(st.integers(0, 9)) == 0 else draw(st.lists(_SCORE, min_size=n, max_size=n))
    )
    flat = draw(st.lists(_CONTRIBUTION, min_size=n * len(NAMES), max_size=n * len(NAMES)))
    return {
        "columns": columns,
        "frame": pd.DataFrame.from_records(records, columns=[*NAMES, "x"]),
        "ids": draw(st.lists(_IDS, min_size=n, max_size=n)),
        "scores": None if scores is None else np.array(scores, dtype=np.float64),
        "contributions": np.array(flat, dtype=np.float64).reshape(n, len(NAMES)),
    }


class Recorder:
    """An ``explain`` callable that records its calls."""

    def __init__(self, contributions: NDArray[np.float64]) -> None:
        self.contributions = contributions
        self.calls: list[list[int]] = []

    def __call__(self, rows: NDArray[np.intp]) -> NDArray[np.float64]:
        self.calls.append(rows.tolist())
        return self.contributions[rows]


def check_types(columns: DecisionColumns) -> None:
    """Plain Python values only (they are serialised as they are)."""
    assert all(type(s) is float for s in columns.score if s is not None)
    assert all(type(t) is float for t in columns.threshold if t is not None)
    for reasons in columns.reasons:
        assert reasons and all(type(r) is tuple and len(r) == 4 for r in reasons)
        assert all(type(r[3]) is float for r in reasons if r[3] is not None)


# ------------------------------------------------------------------------------ tests
@pytest.mark.parametrize("name", sorted(POLICIES))
@settings(max_examples=60, deadline=None)
@given(batch=batches())
def test_columns_and_batch_equal_the_reference(name: str, batch: dict[str, Any]) -> None:
    policy = explain_all(POLICIES[name])
    expected = _ref_decide_batch(
        policy, batch["frame"], batch["scores"], batch["contributions"], NAMES, batch["ids"]
    )
    explain = Recorder(batch["contributions"])
    columns = decide_columns(
        policy, batch["columns"], batch["ids"], batch["scores"], explain, NAMES
    )
    check_types(columns)
    assert len(columns) == len(expected)
    assert parts_from_columns(columns) == expected
    model_rows = [i for i, p in enumerate(expected) if p.source == "model"]
    assert explain.calls == ([model_rows] if model_rows else [])
    # the frame wrapper: same parts, frame in
    assert (
        decide_batch(
            policy, batch["frame"], batch["scores"], batch["contributions"], NAMES, batch["ids"]
        )
        == expected
    )
    # no explanation: band reasons, as the reference without contributions
    plain = _ref_decide_batch(policy, batch["frame"], batch["scores"], None, NAMES, batch["ids"])
    assert (
        parts_from_columns(
            decide_columns(policy, batch["columns"], batch["ids"], batch["scores"], None, NAMES)
        )
        == plain
    )


@pytest.mark.parametrize("name", sorted(POLICIES))
@settings(max_examples=40, deadline=None)
@given(batch=batches(), only=st.sets(st.sampled_from(["approve", "review", "decline", "refer"])))
def test_explain_only_explains_just_those_rows(
    name: str, batch: dict[str, Any], only: set[str]
) -> None:
    base = explain_all(POLICIES[name])
    wanted = [d for d in base.decisions if d in only]
    policy = base.model_copy(update={"explain_only": wanted})
    full = _ref_decide_batch(
        base, batch["frame"], batch["scores"], batch["contributions"], NAMES, batch["ids"]
    )
    rows = [i for i, p in enumerate(full) if p.source == "model" and p.decision in wanted]
    masked = np.full_like(batch["contributions"], np.nan)  # NaN: no feature reason
    masked[rows] = batch["contributions"][rows]
    expected = _ref_decide_batch(base, batch["frame"], batch["scores"], masked, NAMES, batch["ids"])
    explain = Recorder(batch["contributions"])
    columns = decide_columns(
        policy, batch["columns"], batch["ids"], batch["scores"], explain, NAMES
    )
    assert explain.calls == ([rows] if rows else [])
    assert parts_from_columns(columns) == expected
    assert (
        decide_batch(
            policy, batch["frame"], batch["scores"], batch["contributions"], NAMES, batch["ids"]
        )
        == expected
    )


def _policy(**changes: Any) -> Policy:
    return explain_all(HANDMADE).model_copy(update=changes)


def _one_model_row() -> dict[str, Any]:
    return {"columns": {"Amount": [100, 100]}, "ids": ["c1", "c2"], "scores": [0.3, np.nan]}


@pytest.mark.parametrize(
    "policy",
    [
        _policy(reasons="none"),
        _policy(top_reasons=0),
        _policy(reason_codes={}),
        _policy(explain_only=[]),
        _policy(explain_only=["decline"]),  # the model row is a review
    ],
)
def test_explain_is_not_called_when_nothing_needs_it(policy: Policy) -> None:
    def explain(rows: NDArray[np.intp]) -> NDArray[np.float64]:
        raise AssertionError("explain called")

    case = _one_model_row()
    out = decide_columns(policy, case["columns"], case["ids"], case["scores"], explain, NAMES)
    assert out.decision == ["review", "review"] and out.source == ["model", "fallback"]
    assert [r[0][0] for r in out.reasons] == [SCORE_BAND, "MODEL_UNAVAILABLE"]


def test_explained_row_gets_feature_reasons_and_shape_is_checked() -> None:
    case = _one_model_row()
    contributions = np.zeros((1, len(NAMES)))
    contributions[0, NAMES.index("Income")] = 0.7
    out = decide_columns(
        _policy(), case["columns"], case["ids"], case["scores"], lambda rows: contributions, NAMES
    )
    assert out.reasons[0] == [("R09", "Low income", "Income", 0.7)]
    assert out.threshold == [0.25, None] and out.score == [0.3, None]
    with pytest.raises(ValueError, match="explain returned shape"):
        decide_columns(
            _policy(), case["columns"], case["ids"], case["scores"], lambda r: np.zeros((2, 1)),
            NAMES,
        )  # fmt: skip


def test_input_lengths_are_checked() -> None:
    with pytest.raises(ValueError, match="feature 'Amount' has 1 values for 2 rows"):
        decide_columns(HANDMADE, {"Amount": [1]}, ["a", "b"], None, None, NAMES)
    with pytest.raises(ValueError, match="scores has 1 values for 2 rows"):
        decide_columns(HANDMADE, {}, ["a", "b"], [0.1], None, NAMES)
    empty = decide_columns(HANDMADE, {}, [], None, None, NAMES)
    assert len(empty) == 0 and empty.reasons == []


def test_rows_own_their_reason_lists() -> None:
    out = decide_columns(HANDMADE, {}, ["a", "b"], [0.1, 0.1], None, NAMES)
    assert out.reasons[0] == out.reasons[1] and out.reasons[0] is not out.reasons[1]


def test_policy_reason_settings_are_validated() -> None:
    data = {
        "name": "p", "version": "1", "decisions": ["approve", "decline"],
        "bands": [{"decision": "approve", "from": 0.0, "to": 1.0}],
        "fallback": {"decision": "decline"},
    }  # fmt: skip
    policy = parse_policy(data)
    assert (policy.reasons, policy.explain_only) == ("gradient_x_input", None)
    assert parse_policy({**data, "explain_only": ["decline"], "reasons": "tree_path"}).explain_only
    with pytest.raises(PolicyError, match="explain_only: unknown decision 'review'"):
        parse_policy({**data, "explain_only": ["review"]})
    with pytest.raises(PolicyError, match="reasons"):
        parse_policy({**data, "reasons": "shap"})


def test_shipped_policies_name_their_reason_settings() -> None:
    for name in ("credit_v1", "credit_v2_conservative"):
        policy = load_policy(name)
        assert policy.reasons == "gradient_x_input"
        assert policy.explain_only == ["review", "decline"]
