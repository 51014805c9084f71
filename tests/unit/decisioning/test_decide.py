"""decide_batch: rule precedence, band boundaries, segments, fallback and reason codes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from decisioning.assemble import build_decisions
from decisioning.conditions import condition_mask
from decisioning.contracts import Event, FeatureValue
from decisioning.decide import SCORE_BAND, SCORE_INVALID, DecisionParts, decide_batch
from decisioning.policy import Condition, Policy, load_policy, parse_policy

NAMES = ["Amount", "Income", "Seniority", "Debt"]


@pytest.fixture(scope="module")
def policy() -> Policy:
    return parse_policy(
        {
            "name": "t",
            "version": "1",
            "decisions": ["approve", "review", "decline"],
            "rules": [
                {"name": "blocklist", "decision": "decline",
                 "when": {"feature": "entity_id", "op": "in", "value": ["bad-1"]},
                 "reason": {"code": "H01", "text": "Blocklisted"}},
                {"name": "big", "decision": "review",
                 "when": {"feature": "Amount", "op": ">", "value": 4000}},
                {"name": "huge", "decision": "decline",
                 "when": {"feature": "Amount", "op": ">", "value": 8000}},
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
                {"name": "also_renters", "when": {"feature": "Home", "op": "==", "value": "rent"},
                 "bands": [{"decision": "decline", "from": 0.0, "to": 1.0}]},
            ],
            "fallback": {"decision": "review"},
            "reason_codes": {
                "Amount": {"code": "R12", "text": "High requested amount"},
                "Income": {"code": "R09", "text": "Low income"},
                "Seniority": {"code": "R01", "text": "Short employment history"},
            },
            "top_reasons": 2,
        }
    )  # fmt: skip


def frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), index=range(len(rows)))


def decide(
    policy: Policy,
    rows: Sequence[dict[str, Any]],
    scores: Sequence[float] | np.ndarray | None,
    contributions: np.ndarray | None = None,
    ids: Sequence[str] | None = None,
) -> list[DecisionParts]:
    entity_ids = list(ids) if ids is not None else [f"c{i}" for i in range(len(rows))]
    return decide_batch(
        policy,
        frame(rows),
        None if scores is None else np.asarray(scores),
        contributions,
        NAMES,
        entity_ids,
    )


def test_first_matching_rule_wins_and_rules_precede_model(policy: Policy) -> None:
    rows = [{"Amount": 9000}, {"Amount": 9000}, {"Amount": 5000}, {"Amount": 100}]
    out = decide(policy, rows, [0.01, 0.01, 0.99, 0.01], ids=["bad-1", "c1", "c2", "c3"])
    assert [(p.decision, p.rule, p.source) for p in out] == [
        ("decline", "blocklist", "rule"),  # blocklist declared before big/huge
        ("review", "big", "rule"),  # big (> 4000) declared before huge (> 8000)
        ("review", "big", "rule"),  # rule beats a decline-level score
        ("approve", None, "model"),
    ]
    assert out[0].reasons[0].code == "H01"
    assert out[1].reasons[0].code == "RULE_BIG" and out[1].reasons[0].feature == "Amount"
    assert out[1].threshold is None and out[1].score == 0.01


def test_rules_still_apply_when_model_unavailable(policy: Policy) -> None:
    out = decide(policy, [{"Amount": 5000}, {"Amount": 1}], None, ids=["c0", "bad-1"])
    assert [(p.decision, p.rule) for p in out] == [("review", "big"), ("decline", "blocklist")]
    assert all(p.score is None for p in out)


@pytest.mark.parametrize(
    ("score", "decision", "threshold"),
    [
        (0.0, "approve", 0.25),
        (np.nextafter(0.25, 0.0), "approve", 0.25),
        (0.25, "review", 0.25),
        (np.nextafter(0.5, 0.0), "review", 0.25),
        (0.5, "decline", 0.5),
        (0.75, "decline", 0.5),
        (1.0, "decline", 0.5),
    ],
)
def test_band_boundaries_are_half_open(
    policy: Policy, score: float, decision: str, threshold: float
) -> None:
    (part,) = decide(policy, [{"Amount": 1, "Home": "owner"}], [score])
    assert (part.decision, part.threshold, part.source) == (decision, threshold, "model")
    assert part.score == score and part.segment is None


@pytest.mark.parametrize(
    ("score", "decision"),
    [(0.19, "approve"), (0.2, "review"), (0.22, "review"), (0.45, "decline"), (1.0, "decline")],
)
def test_segment_override_first_segment_wins(policy: Policy, score: float, decision: str) -> None:
    rent, own = decide(policy, [{"Home": "rent"}, {"Home": "owner"}], [score, score])
    assert (rent.decision, rent.segment) == (decision, "renters")
    assert own.segment is None
    # the default bands at 0.22 would approve
    assert decide(policy, [{"Home": "owner"}], [0.22])[0].decision == "approve"


def test_fallback_when_scores_none(policy: Policy) -> None:
    out = decide(policy, [{"Amount": 1}, {"Home": "rent"}], None)
    for part in out:
        assert (part.decision, part.source, part.score, part.threshold) == (
            "review",
            "fallback",
            None,
            None,
        )
        assert [r.code for r in part.reasons] == ["MODEL_UNAVAILABLE"]
    assert out[1].segment == "renters"


def test_fallback_per_row_for_nan_and_invalid_scores(policy: Policy) -> None:
    out = decide(policy, [{}, {}, {}, {}], [np.nan, 1.5, -0.1, 0.1])
    assert [p.decision for p in out] == ["review", "review", "review", "approve"]
    assert [p.reasons[0].code for p in out[:3]] == ["MODEL_UNAVAILABLE", SCORE_INVALID,
                                                    SCORE_INVALID]  # fmt: skip
    assert [p.score for p in out] == [None, None, None, 0.1]


def test_reasons_from_contributions(policy: Policy) -> None:
    contributions = np.array(
        [
            [0.1, 0.3, 0.2, 9.0],  # Debt is not catalogued: skipped
            [0.2, 0.2, 0.2, 0.0],  # ties keep feature order
            [-0.1, 0.0, 0.05, 1.0],  # only positive contributions count
            [-1.0, -1.0, np.nan, 1.0],  # nothing positive -> SCORE_BAND
        ]
    )
    out = decide(policy, [{}] * 4, [0.6, 0.6, 0.6, 0.6], contributions)
    assert [(r.code, r.feature, r.contribution) for r in out[0].reasons] == [
        ("R09", "Income", 0.3),
        ("R01", "Seniority", 0.2),
    ]
    assert [r.feature for r in out[1].reasons] == ["Amount", "Income"]
    assert [(r.code, r.contribution) for r in out[2].reasons] == [("R01", 0.05)]
    assert [r.code for r in out[3].reasons] == [SCORE_BAND]
    assert out[3].reasons[0].text == "Risk score in the decline band"


def test_no_contributions_gives_band_reason(policy: Policy) -> None:
    (part,) = decide(policy, [{}], [0.3])
    assert [r.code for r in part.reasons] == [SCORE_BAND]


def test_shape_errors(policy: Policy) -> None:
    with pytest.raises(ValueError, match="scores has 1 values for 2 rows"):
        decide(policy, [{}, {}], [0.1])
    with pytest.raises(ValueError, match="contributions has shape"):
        decide(policy, [{}], [0.1], np.zeros((1, 2)))
    with pytest.raises(ValueError, match="entity_ids"):
        decide(policy, [{}], [0.1], ids=["a", "b"])


def test_empty_batch(policy: Policy) -> None:
    assert decide_batch(policy, pd.DataFrame(), np.array([]), None, NAMES, []) == []
    assert decide_batch(policy, pd.DataFrame(columns=NAMES), None, None, NAMES, []) == []


def test_deterministic_and_row_order_independent(policy: Policy) -> None:
    rng = np.random.default_rng(7)
    n = 500
    rows = [
        {"Amount": int(a), "Home": h, "Income": None if i % 7 == 0 else float(i)}
        for i, (a, h) in enumerate(
            zip(rng.integers(0, 10_000, n), rng.choice(["rent", "owner"], n), strict=True)
        )
    ]
    scores = rng.random(n)
    contributions = rng.normal(size=(n, len(NAMES)))
    ids = [f"c{i}" for i in range(n)]
    first = decide(policy, rows, scores, contributions, ids)
    assert first == decide(policy, rows, scores, contributions, ids)
    perm = rng.permutation(n)
    permuted = decide(policy, [rows[i] for i in perm], scores[perm], contributions[perm],
                      [ids[i] for i in perm])  # fmt: skip
    assert permuted == [first[i] for i in perm]


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        (">", 1, [False, True, False, False, False, False]),
        ("<=", 2, [True, True, False, False, False, False]),
        ("==", 2, [False, True, False, False, False, False]),
        ("!=", 2, [True, False, True, True, False, False]),  # missing is never != anything
        ("==", True, [False, False, False, True, False, False]),  # true is not 1
        ("==", "2", [False, False, True, False, False, False]),  # "2" is not 2
        ("in", [1, "2"], [True, False, True, False, False, False]),
        ("not_in", [1, "2"], [False, True, False, True, False, False]),
        ("is_missing", None, [False, False, False, False, True, True]),
        ("is_missing", False, [True, True, True, True, False, False]),
    ],
)
def test_condition_semantics(op: str, value: object, expected: list[bool]) -> None:
    features = pd.DataFrame({"x": pd.Series([1, 2.0, "2", True, None, np.nan], dtype=object)})
    ids = np.array([f"c{i}" for i in range(6)], dtype=object)
    mask = condition_mask(Condition(feature="x", op=op, value=value), features, ids)  # type: ignore[arg-type]
    assert mask.tolist() == expected


def test_numeric_fast_path_and_absent_column() -> None:
    features = pd.DataFrame({"x": [1.0, np.nan, 3.0]})
    ids = np.array(["a", "b", "c"], dtype=object)
    assert condition_mask(Condition(feature="x", op=">=", value=1), features, ids).tolist() == [
        True, False, True,
    ]  # fmt: skip
    absent = Condition(feature="y", op="is_missing")
    assert condition_mask(absent, features, ids).tolist() == [True, True, True]


def test_end_to_end_with_shipped_policy_and_records() -> None:
    policy = load_policy("credit_v1")
    t0 = datetime(2026, 11, 23, 12, tzinfo=UTC)
    inputs: list[tuple[str, dict[str, FeatureValue]]] = [
        ("cust-1", {"Amount": 800, "Income": 100.0, "Home": "owner", "Seniority": 1}),
        ("cust-blocked-0001", {"Amount": 800, "Income": 100.0}),
        ("cust-2", {"Amount": 5000, "Income": 100.0}),
        ("cust-3", {"Amount": 800, "Home": "rent"}),  # Income missing -> rule
        ("cust-4", {"Amount": 800, "Income": 50.0, "Home": "rent"}),
    ]
    events = [
        Event(event_id=f"e{i}", entity_id=eid, event_time=t0, features=feats)
        for i, (eid, feats) in enumerate(inputs)
    ]
    names = ["Amount", "Income", "Seniority"]
    df = pd.DataFrame.from_records([e.features for e in events], columns=[*names, "Home"])
    scores = np.array([0.1, 0.1, 0.1, 0.1, 0.3])
    contributions = np.array([[0.0, 0.0, 0.4]] * 5)
    parts = decide_batch(policy, df, scores, contributions, names, [e.entity_id for e in events])
    assert [p.decision for p in parts] == ["approve", "decline", "review", "review", "review"]
    assert [p.rule for p in parts] == [None, "blocklist", "large_amount", "income_missing", None]
    assert parts[4].segment == "renters" and parts[4].threshold == 0.2
    decided = t0 + timedelta(milliseconds=15)
    common: dict[str, Any] = {
        "policy": policy,
        "model_name": "m",
        "model_version": 3,
        "shadow": False,
        "decided_at": decided,
        "feature_names": names,
    }
    records = build_decisions(events, parts, arms=["champion"] * 5, **common)
    assert [r.code for r in records[0].reasons] == [SCORE_BAND]  # explain_only: review, decline
    assert records[4].reasons[0].code == "R01"
    assert records[0].latency_ms == pytest.approx(15.0)
    assert records[0].policy_version == "1.1" and records[0].segment is None
    assert records[4].segment == "renters"
    # the hash covers the named features only: Home does not change it
    other = events[0].model_copy(update={"features": {**events[0].features, "Home": "rent"}})
    (again,) = build_decisions([other], parts[:1], arms=["champion"], **common)
    assert again.feature_hash == records[0].feature_hash
