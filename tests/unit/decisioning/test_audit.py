"""Audit: canonical feature hashes and decision change tables."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from decisioning.audit import ABSENT, NO_GROUP, canonical_json, diff_decisions, feature_hash


def test_canonical_json_and_hash() -> None:
    assert canonical_json({"b": 1, "a": "é", "c": None}) == '{"a":"é","b":1,"c":null}'.encode()
    features = {"b": 1, "a": 2.5}
    assert feature_hash(features) == hashlib.sha256(b'{"a":2.5,"b":1}').hexdigest()
    assert feature_hash({"a": 2.5, "b": 1}) == feature_hash(features)  # key order is irrelevant
    assert feature_hash({"a": 1}) != feature_hash({"a": 1.0})  # types are part of the value
    assert feature_hash(features, ["a", "z"]) == feature_hash({"a": 2.5, "z": None})
    with pytest.raises(ValueError):
        canonical_json({"a": float("nan")})


def test_diff_decisions_counts_and_groups() -> None:
    before = pd.DataFrame(
        {
            "event_id": ["e1", "e2", "e3", "e4", "e5"],
            "decision": ["approve", "approve", "review", "decline", "approve"],
            "arm": ["champion", "champion", "challenger", "champion", "challenger"],
        }
    )
    after = pd.DataFrame(
        {
            "event_id": ["e1", "e2", "e3", "e4", "e6"],
            "decision": ["approve", "review", "review", "decline", "decline"],
            "arm": ["champion", "champion", "challenger", "champion", "champion"],
            "segment": ["renters", None, "renters", None, None],
        }
    )
    table = diff_decisions(before, after)
    as_tuples = {
        (str(f), str(t)): int(c)
        for f, t, c in zip(
            table["from_decision"], table["to_decision"], table["count"], strict=True
        )
    }
    assert as_tuples == {
        ("approve", "approve"): 1,
        ("approve", "review"): 1,
        ("review", "review"): 1,
        ("decline", "decline"): 1,
        ("approve", ABSENT): 1,
        (ABSENT, "decline"): 1,
    }
    assert table["count"].sum() == 6 and table["share"].sum() == pytest.approx(1.0)
    assert table["changed"].sum() == 3

    by_arm = diff_decisions(before, after, by=["arm"])
    assert list(by_arm.columns) == [
        "arm", "from_decision", "to_decision", "count", "share", "changed",
    ]  # fmt: skip
    assert by_arm.groupby("arm")["share"].sum().tolist() == pytest.approx([1.0, 1.0])
    champion = by_arm[by_arm["arm"] == "champion"]
    assert champion["count"].sum() == 4

    by_segment = diff_decisions(before, after, by=["segment"])
    assert set(by_segment["segment"]) == {"renters", NO_GROUP}


def test_diff_decisions_input_errors() -> None:
    good = pd.DataFrame({"event_id": ["e1"], "decision": ["approve"]})
    with pytest.raises(ValueError, match="lacks columns"):
        diff_decisions(good, good.drop(columns="decision"))
    with pytest.raises(ValueError, match="duplicate"):
        diff_decisions(pd.concat([good, good]), good)
    with pytest.raises(ValueError, match="neither"):
        diff_decisions(good, good, by=["arm"])
