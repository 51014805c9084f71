"""Replay with in-package doubles: the same model and policy reproduce every recorded decision;
a stricter policy shows what would change; dead-lettered or unrecorded events are left out."""

from __future__ import annotations

import json

import pandas as pd

from decisioning.policy import load_policy
from workers.engine import DecisionEngine, RawRecord
from workers.replay import replay_records
from workers.testing import FakeModel, valid_event


def _stream() -> tuple[list[RawRecord], pd.DataFrame, FakeModel]:
    model = FakeModel(version=1)
    policy = load_policy("credit_v1", known_features=model.spec.feature_names)
    amounts = [300, 1200, 2500, 5000, 9000]
    events = [
        RawRecord("events", 0, i, None, json.dumps(valid_event(i, a)).encode())
        for i, a in enumerate(amounts)
    ]
    bad = RawRecord("events", 0, 99, None, b"{ not json")
    engine = DecisionEngine(model, policy, model.spec)
    try:
        out = engine.process([*events, bad])
    finally:
        engine.close()
    recorded = pd.DataFrame([d.model_dump(mode="json") for d in out.decisions])
    unrecorded = RawRecord("events", 0, 100, None, json.dumps(valid_event(100)).encode())
    return [*events, bad, unrecorded], recorded, model


def test_the_same_model_and_policy_reproduce_every_decision() -> None:
    events, recorded, model = _stream()
    policy = load_policy("credit_v1", known_features=model.spec.feature_names)
    asked: list[int | None] = []

    def load(version: int | None) -> FakeModel:
        asked.append(version)
        return model

    result = replay_records(events, recorded, policy, load)
    assert result.compared == len(recorded) == 5 and result.identical == 5
    assert asked == [1]  # the recorded version decided them


def test_a_stricter_policy_shows_what_would_change() -> None:
    events, recorded, model = _stream()
    strict = load_policy("credit_v2_conservative", known_features=model.spec.feature_names)
    result = replay_records(events, recorded, strict, lambda _v: model, model_ref="challenger")
    assert result.compared == 5 and result.identical < 5
    assert not result.changes.empty
