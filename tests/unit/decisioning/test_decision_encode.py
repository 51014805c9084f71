"""encode_decisions: the records build_decisions + encode_record write, column-wise."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import jsonschema
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from decisioning.assemble import build_decisions
from decisioning.audit import feature_hash
from decisioning.columns import DecisionColumns, EventColumns, ReasonRow
from decisioning.contract_files import DEFAULT_DIR
from decisioning.contracts import Arm, Decision, Event, encode_record
from decisioning.decide import DecisionParts, decide_batch
from decisioning.decision_encode import encode_decisions
from decisioning.policy import Policy, parse_policy

NAMES = ["Amount", "Income", "Seniority", "Home"]
SCHEMA = json.loads((DEFAULT_DIR / "decision.schema.json").read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
DECIDED_AT = datetime(2026, 11, 23, 13, 0, 0, 42_500, tzinfo=timezone(timedelta(hours=1)))
METHOD = "integrated_gradients"


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
            ],
            "fallback": {"decision": "review"},
            "reason_codes": {
                "Amount": {"code": "R12", "text": "High requested amount"},
                "Income": {"code": "R09", "text": "Low \u00e9 income \"quoted\"\n"},
                "Seniority": {"code": "R01", "text": "Short employment history"},
            },
            "top_reasons": 2,
        }
    )  # fmt: skip


def _events(features: Sequence[dict[str, Any]], ids: Sequence[str]) -> list[Event]:
    zones = [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]
    return [
        Event(
            event_id=f"e-{i}",
            entity_id=entity,
            event_time=datetime(2026, 11, 23, 12, 0, i % 60, (i * 123_457) % 1_000_000).replace(
                tzinfo=zones[i % 3]
            ),
            features=row,
        )
        for i, (row, entity) in enumerate(zip(features, ids, strict=True))
    ]


def _event_columns(events: Sequence[Event]) -> EventColumns:
    return EventColumns(
        event_id=[e.event_id for e in events],
        entity_id=[e.entity_id for e in events],
        event_time=[e.event_time for e in events],
        features={n: [e.features.get(n) for e in events] for n in NAMES},
        feature_hash=[feature_hash(e.features) for e in events],
    )


def _decision_columns(parts: Sequence[DecisionParts]) -> DecisionColumns:
    return DecisionColumns(
        decision=[p.decision for p in parts],
        score=[p.score for p in parts],
        threshold=[p.threshold for p in parts],
        reasons=[[(r.code, r.text, r.feature, r.contribution) for r in p.reasons] for p in parts],
        rule=[p.rule for p in parts],
        segment=[p.segment for p in parts],
        source=[p.source for p in parts],
    )


def _reference(
    events: Sequence[Event],
    parts: Sequence[DecisionParts],
    policy: Policy,
    arms: Sequence[Arm],
    *,
    shadow: bool,
    model_version: int | None,
    reason_method: str | None,
) -> list[bytes]:
    """The pydantic path, with reason_method set as encode_decisions sets it."""
    decided = build_decisions(
        events,
        parts,
        policy=policy,
        model_name="credit_mlp",
        model_version=model_version,
        arms=arms,
        shadow=shadow,
        decided_at=DECIDED_AT,
    )
    out = []
    for d in decided:
        method = reason_method if any(r.contribution is not None for r in d.reasons) else None
        out.append(encode_record(Decision.model_validate({**dict(d), "reason_method": method})))
    return out


def _check(new: list[bytes], old: list[bytes]) -> None:
    assert len(new) == len(old)
    for got, want in zip(new, old, strict=True):
        parsed = json.loads(got)
        VALIDATOR.validate(parsed)
        assert Decision.model_validate_json(got) == Decision.model_validate_json(want)
        assert parsed == json.loads(want)
        assert list(parsed) == list(json.loads(want))  # the same field order


def _batch(policy: Policy, scores: Sequence[float] | None) -> tuple[list[Event], list[Any]]:
    rows: list[dict[str, Any]] = [
        {"Amount": 9000, "Home": "rent"},  # big rule (a feature reason, no contribution)
        {"Amount": 100, "Home": "rent", "Income": 1.5},  # blocklist rule
        {"Amount": 100, "Home": "own", "Seniority": 3},  # model, top feature reasons
        {"Amount": 100, "Home": "rent"},  # model, renters segment, SCORE_BAND reason
        {"Amount": 100, "Home": "own", "Income": None},  # NaN score -> fallback SCORE_INVALID
        {"Amount": 2500.25, "Home": "rent", "Seniority": 1},  # model, one feature reason
    ]
    ids = ["c0", "bad-1", "c2", "c3", "c4", "c5"]
    contributions = np.array(
        [
            [0.5, 0.1, 0.0, 0.0],
            [0.5, 0.1, 0.0, 0.0],
            [0.3, 0.2, 0.25, 0.0],
            [-0.1, 0.0, -0.2, 0.4],
            [0.1, 0.1, 0.1, 0.1],
            [0.0, -1.0, 1e-7, 0.0],
        ]
    )
    events = _events(rows, ids)
    frame = pd.DataFrame(rows, columns=NAMES)
    parts = decide_batch(
        policy,
        frame,
        None if scores is None else np.asarray(scores),
        None if scores is None else contributions,
        NAMES,
        ids,
    )
    return events, parts


@pytest.mark.parametrize("shadow", [False, True])
@pytest.mark.parametrize("scored", [True, False])
def test_records_equal_the_pydantic_path(policy: Policy, shadow: bool, scored: bool) -> None:
    scores = [0.9, 0.1, 0.31, 0.3, float("nan"), 0.05] if scored else None
    events, parts = _batch(policy, scores)
    arms: list[Arm] = ["champion", "challenger"] * 3
    sources = {p.source for p in parts}
    assert sources == ({"rule", "model", "fallback"} if scored else {"rule", "fallback"})
    version = 3 if scored else None
    new = encode_decisions(
        _event_columns(events),
        _decision_columns(parts),
        model_name="credit_mlp",
        model_version=version,
        policy_name=policy.name,
        policy_version=policy.version,
        arms=arms,
        shadow=shadow,
        decided_at=DECIDED_AT,
        reason_method=METHOD,
    )
    old = _reference(
        events, parts, policy, arms, shadow=shadow, model_version=version, reason_method=METHOD
    )
    _check(new, old)
    assert new == old  # byte for byte, here: no float needs an exponent of 16 or more
    records = [json.loads(r) for r in new]
    assert {r["segment"] for r in records} == {"renters", None}
    assert [r["arm"] for r in records] == arms and {r["shadow"] for r in records} == {shadow}
    assert records[0]["event_time"] == "2026-11-23T12:00:00Z"
    assert records[0]["decided_at"] == "2026-11-23T12:00:00.042500Z"
    for r in records:
        attributed = any(reason["contribution"] is not None for reason in r["reasons"])
        assert r["reason_method"] == (METHOD if attributed else None)
    if scored:
        assert records[4]["score"] is None and records[4]["reason_method"] is None
        assert records[2]["reason_method"] == METHOD and records[2]["threshold"] == 0.25


def test_one_arm_for_every_row_and_no_method(policy: Policy) -> None:
    events, parts = _batch(policy, [0.9, 0.1, 0.31, 0.3, 0.5, 0.05])
    new = encode_decisions(
        _event_columns(events),
        _decision_columns(parts),
        model_name="credit_mlp",
        model_version=7,
        policy_name=policy.name,
        policy_version=policy.version,
        arms="challenger",
        shadow=False,
        decided_at=DECIDED_AT,
        reason_method=None,
    )
    old = _reference(
        events, parts, policy, ["challenger"] * 6, shadow=False, model_version=7, reason_method=None
    )
    _check(new, old)
    assert {json.loads(r)["reason_method"] for r in new} == {None}


def _one(**change: Any) -> list[bytes]:
    """Encode one row, with ``change`` applied to the arguments or the row's columns."""
    event = Event(
        event_id="e",
        entity_id="c",
        event_time=datetime(2026, 1, 1, tzinfo=UTC),
        features={"Amount": 1},
    )
    events = _event_columns([event])
    columns = {k: change.pop(k) for k in list(change) if k in EventColumns.__slots__}
    events = EventColumns(**{**{k: getattr(events, k) for k in EventColumns.__slots__}, **columns})
    row: dict[str, Any] = {
        "decision": ["approve"],
        "score": [0.1],
        "threshold": [0.25],
        "reasons": [[("R01", "text", "Amount", 0.5)]],
        "rule": [None],
        "segment": [None],
        "source": ["model"],
    }
    row.update({k: change.pop(k) for k in list(change) if k in row})
    kwargs: dict[str, Any] = {
        "model_name": "m",
        "model_version": 1,
        "policy_name": "p",
        "policy_version": "1",
        "arms": ["champion"],
        "shadow": False,
        "decided_at": datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC),
        "reason_method": METHOD,
        **change,
    }
    return encode_decisions(events, DecisionColumns(**row), **kwargs)


@pytest.mark.parametrize(
    "change",
    [
        {"score": [1.5]},
        {"score": [float("nan")]},
        {"threshold": [float("inf")]},
        {"decision": [""]},
        {"decision": ["a\x00"]},
        {"reasons": [[("", "text", None, None)]]},
        {"reasons": [[("R01", "text", "Amount", float("nan"))]]},
        {"arms": ["blue"]},
        {"model_name": ""},
        {"policy_version": "x" * 129},
        {"feature_hash": ["abc"]},
        {"event_id": ["x" * 129]},
    ],
    ids=repr,
)
def test_what_the_contract_rejects_raises_its_validation_error(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _one(**change)


@pytest.mark.parametrize(
    "change",
    [{"decided_at": datetime(2026, 1, 1)}, {"event_time": [datetime(2026, 1, 1)]}],
    ids=["decided_at", "event_time"],
)
def test_a_naive_time_raises_as_in_build_decisions(change: dict[str, Any]) -> None:
    with pytest.raises(TypeError, match="offset-naive"):  # decided_at - event_time
        _one(**change)


def test_values_pydantic_converts_are_converted() -> None:
    (record,) = _one(score=[1], model_version=2)
    assert json.loads(record)["score"] == 1.0 and b'"score":1.0' in record
    (record,) = _one(event_time=[datetime(2026, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))])
    assert json.loads(record)["event_time"] == "2026-01-01T00:00:00Z"


def test_mismatched_lengths_raise() -> None:
    with pytest.raises(ValueError, match="arms"):
        _one(arms=["champion", "champion"])


reason_rows = st.tuples(
    st.text(min_size=1, max_size=8).filter(lambda s: "\x00" not in s),
    st.text(max_size=12),
    st.none() | st.text(max_size=8),
    st.none() | st.floats(allow_nan=False, allow_infinity=False),
)
rows = st.fixed_dictionaries(
    {
        "decision": st.sampled_from(["approve", "review", "d\u00e9cline \U0001f600"]),
        "score": st.none() | st.floats(min_value=0.0, max_value=1.0),
        "threshold": st.none() | st.floats(allow_nan=False, allow_infinity=False),
        "reasons": st.lists(reason_rows, max_size=3),
        "rule": st.none() | st.text(max_size=8),
        "segment": st.none() | st.text(max_size=8),
        "arm": st.sampled_from(["champion", "challenger"]),
        "event_time": st.datetimes(
            min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)
        ),
        "entity_id": st.text(min_size=1, max_size=20).filter(lambda s: "\x00" not in s),
    }
)


@settings(max_examples=300, deadline=None)
@given(st.lists(rows, min_size=1, max_size=5), st.none() | st.text(max_size=10), st.booleans())
def test_random_rows_equal_the_pydantic_path(
    batch: list[dict[str, Any]], method: str | None, shadow: bool
) -> None:
    events = EventColumns(
        event_id=[f"e{i}" for i in range(len(batch))],
        entity_id=[r["entity_id"] for r in batch],
        event_time=[r["event_time"] for r in batch],
        features={},
        feature_hash=[feature_hash({"i": i}) for i in range(len(batch))],
    )
    reasons: list[list[ReasonRow]] = [r["reasons"] for r in batch]
    parts = DecisionColumns(
        decision=[r["decision"] for r in batch],
        score=[r["score"] for r in batch],
        threshold=[r["threshold"] for r in batch],
        reasons=reasons,
        rule=[r["rule"] for r in batch],
        segment=[r["segment"] for r in batch],
        source=["model"] * len(batch),
    )
    arms = [r["arm"] for r in batch]
    new = encode_decisions(
        events,
        parts,
        model_name="m",
        model_version=None,
        policy_name="p",
        policy_version="v",
        arms=arms,
        shadow=shadow,
        decided_at=DECIDED_AT,
        reason_method=method,
    )
    old = []
    for i, r in enumerate(batch):
        has_feature = any(row[3] is not None for row in r["reasons"])
        old.append(
            encode_record(
                Decision(
                    event_id=events.event_id[i],
                    entity_id=r["entity_id"],
                    decision=r["decision"],
                    score=r["score"],
                    threshold=r["threshold"],
                    reasons=[
                        {"code": c, "text": t, "feature": f, "contribution": x}
                        for c, t, f, x in r["reasons"]
                    ],
                    reason_method=method if has_feature else None,
                    rule=r["rule"],
                    segment=r["segment"],
                    model_name="m",
                    model_version=None,
                    policy_name="p",
                    policy_version="v",
                    arm=r["arm"],
                    shadow=shadow,
                    feature_hash=events.feature_hash[i],
                    event_time=r["event_time"],
                    decided_at=DECIDED_AT,
                    latency_ms=(DECIDED_AT - r["event_time"]).total_seconds() * 1000.0,
                )
            )
        )
    _check(new, old)
