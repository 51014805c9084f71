"""The decision engine on in-package doubles: decisions, dead letters, fallbacks, arms."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest

from decisioning.arms import ArmConfig
from decisioning.policy import load_policy
from workers.engine import DecisionEngine, RawRecord
from workers.malformed import malformed_corpus
from workers.testing import FakeModel, valid_event


def _rec(i: int, value: bytes) -> RawRecord:
    return RawRecord("events", 0, i, f"k{i}".encode(), value)


def _engine(model: FakeModel | None = None, **kw: object) -> DecisionEngine:
    model = model or FakeModel()
    return DecisionEngine(model, load_policy("credit_v1"), model.spec, **kw)  # type: ignore[arg-type]


def test_valid_events_are_decided_with_reasons_and_versions() -> None:
    engine = _engine(FakeModel(version=3))
    batch = [_rec(i, json.dumps(valid_event(i, 500 + 900 * i)).encode()) for i in range(5)]
    out = engine.process(batch)
    assert [d.event_id for d in out.decisions] == [f"evt-{i}" for i in range(5)]
    assert out.dlq == []
    assert all(d.model_version == 3 and d.arm == "champion" for d in out.decisions)
    assert {d.decision for d in out.decisions} <= {"approve", "review", "decline"}
    assert all(d.reasons for d in out.decisions)
    assert all(d.latency_ms >= 0 and len(d.feature_hash) == 64 for d in out.decisions)


def test_malformed_corpus_goes_to_dlq_with_reasons_and_neighbours_are_decided() -> None:
    engine = _engine(max_message_bytes=64 * 1024)
    corpus = malformed_corpus(64 * 1024)
    batch = []
    for i, (_, raw) in enumerate(corpus):
        batch.append(_rec(2 * i, json.dumps(valid_event(i)).encode()))
        batch.append(_rec(2 * i + 1, raw))
    out = engine.process(batch)
    assert len(out.decisions) == len(corpus)
    assert len(out.dlq) == len(corpus)
    assert [d.reason for d in out.dlq] == [reason for reason, _ in corpus]
    for dead, (_, raw) in zip(out.dlq, corpus, strict=True):
        assert dead.source_topic == "events" and dead.source_offset % 2 == 1
        assert dead.raw_size == len(raw)
        kept = base64.b64decode(dead.raw)
        assert raw.startswith(kept) and dead.error_message


def test_null_value_record_is_dead_lettered_not_crashed() -> None:
    out = _engine().process([RawRecord("events", 2, 9, None, None)])
    assert out.decisions == [] and out.dlq[0].source_partition == 2


@pytest.mark.parametrize("model", [FakeModel(fail=True), FakeModel(delay_s=0.5)])
def test_model_failure_or_timeout_takes_the_policy_fallback(model: FakeModel) -> None:
    engine = _engine(model, score_timeout_s=0.1)
    out = engine.process([_rec(0, json.dumps(valid_event(0)).encode())])
    (d,) = out.decisions
    policy = load_policy("credit_v1")
    assert d.decision == policy.fallback.decision
    assert d.score is None and d.model_version is None
    assert any(r.code == "MODEL_UNAVAILABLE" for r in d.reasons)


@pytest.mark.parametrize(
    "model", [FakeModel(explain_fail=True), FakeModel(explain_delay_s=0.5)], ids=["fails", "stalls"]
)
def test_an_explainer_that_fails_or_stalls_keeps_the_scores_with_band_reasons(
    model: FakeModel,
) -> None:
    engine = _engine(model, score_timeout_s=0.2)
    amounts = [100.0, 2_500.0, 2_600.0]  # approved, then declined by score: explained
    batch = [_rec(i, json.dumps(valid_event(i, a)).encode()) for i, a in enumerate(amounts)]
    out = engine.process(batch)
    expected = _engine().process(batch).decisions
    assert [d.decision for d in out.decisions] == [d.decision for d in expected]
    assert [d.score for d in out.decisions] == [d.score for d in expected]
    assert any(r.contribution is not None for d in expected for r in d.reasons)
    for d in out.decisions:
        assert d.model_version == 1 and d.reasons and d.reason_method is None
        assert all(r.contribution is None and r.code != "MODEL_UNAVAILABLE" for r in d.reasons)


def test_swap_champion_between_batches_names_the_new_version() -> None:
    engine = _engine(FakeModel(version=1))
    first = engine.process([_rec(0, json.dumps(valid_event(0)).encode())])
    engine.swap_champion(FakeModel(version=2))
    second = engine.process([_rec(1, json.dumps(valid_event(1)).encode())])
    assert first.decisions[0].model_version == 1
    assert second.decisions[0].model_version == 2


def test_challenger_arm_and_shadow_records() -> None:
    engine = _engine(
        arms=ArmConfig(challenger_share=0.3, shadow_share=1.0),
        challenger_policy=load_policy("credit_v2_conservative"),
    )
    batch = [_rec(i, json.dumps(valid_event(i, 2500)).encode()) for i in range(200)]
    out = engine.process(batch)
    assert len(out.decisions) == 200 and len(out.shadow) == 200
    arms = {d.event_id: d.arm for d in out.decisions}
    assert 30 < sum(a == "challenger" for a in arms.values()) < 90
    for s in out.shadow:
        assert s.shadow and s.arm != arms[s.event_id]
    again = engine.process(batch)
    assert {d.event_id: d.arm for d in again.decisions} == arms


def test_spec_ranges_and_event_time_window_dead_letter_out_of_range() -> None:
    """The engine validates against the spec's ranges and event_time window."""
    from datetime import UTC, datetime

    negative = valid_event(0, -1e308)
    future = valid_event(1) | {"event_time": "9999-12-31T00:00:00+00:00"}
    old = valid_event(2) | {"event_time": datetime(1, 1, 1, tzinfo=UTC).isoformat()}
    batch = [_rec(i, json.dumps(e).encode()) for i, e in enumerate([negative, future, old])]
    out = _engine().process([*batch, _rec(3, json.dumps(valid_event(3, 0)).encode())])
    assert [d.event_id for d in out.decisions] == ["evt-3"]
    assert [(d.reason, d.stage) for d in out.dlq] == [("out_of_range", "validate")] * 3
    assert out.dlq[0].error_message == "feature 'Amount' = -1e+308 is below the minimum 0"
    assert out.dlq[1].error_message.startswith("event_time = 9999-12-31T00:00:00+00:00 is after")


class _ThreadSeeingModel(FakeModel):
    """Records the OpenMP thread counts its scoring call runs with."""

    seen: list[int]

    def score_with_explainer(self, *args: Any, **kwargs: Any) -> Any:
        from threadpoolctl import threadpool_info

        self.seen += [i["num_threads"] for i in threadpool_info() if i["internal_api"] == "openmp"]
        return super().score_with_explainer(*args, **kwargs)


def _openmp_threads_seen(threads: int) -> list[int]:
    """The OpenMP thread counts a model saw on the scoring thread."""
    import sklearn.ensemble  # noqa: F401  (scikit-learn's OpenMP runtime, which its trees use)

    model = _ThreadSeeingModel()
    model.seen = []
    engine = _engine(model, threads=threads)
    engine.process([_rec(0, json.dumps(valid_event(0)).encode())])
    engine.close()
    return model.seen


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: every pool has one thread")
def test_models_score_with_the_workers_thread_limit() -> None:
    assert max(_openmp_threads_seen(threads=0)) > 1  # no limit: one OpenMP thread per core
    assert set(_openmp_threads_seen(threads=1)) == {1}
