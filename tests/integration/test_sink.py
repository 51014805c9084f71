"""The sink against the real broker and the real PostgreSQL (a schema of its own per test)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

from kafka import KafkaProducer
from sqlalchemy import Engine

from decisioning.contracts import Decision
from models.spec import load_spec
from storage import store
from tests.integration.streaming import make_topics
from workers.settings import SinkSettings
from workers.sink import DecisionSink, publish_outcomes
from workers.testing import valid_event


def _decision(i: int) -> Decision:
    now = datetime.now(UTC)
    return Decision(
        event_id=f"evt-{i}",
        entity_id=f"app-{i:06d}",
        decision="approve",
        score=0.2,
        threshold=0.5,
        model_name="credit",
        model_version=1,
        policy_name="credit_v1",
        policy_version="1",
        arm="champion",
        shadow=False,
        feature_hash="a" * 64,
        event_time=now,
        decided_at=now,
        latency_ms=1.0,
    )


def test_sink_lands_every_record_once_even_when_replayed(
    bootstrap: str, make_topic: Callable[..., str], group_id: str, pg_url: str
) -> None:
    topics = make_topics(make_topic, partitions=2)
    n = 300
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for i in range(n):
        key = f"app-{i:06d}".encode()
        producer.send(topics.events, key=key, value=json.dumps(valid_event(i)).encode())
        producer.send(topics.decisions, key=key, value=_decision(i).model_dump_json().encode())
    producer.send(topics.decisions, key=b"x", value=b"{not json")  # bad: counted, skipped
    producer.send(topics.decisions, value=_decision(0).model_dump_json().encode())  # duplicate
    producer.flush()
    producer.close()
    settings = SinkSettings(topics=topics, sink_group_id=group_id)
    labels = {f"evt-{i}": (f"app-{i:06d}", "bad" if i % 3 == 0 else "good") for i in range(100)}
    assert publish_outcomes(settings, labels) == 100

    engine: Engine = store.make_engine(pg_url)
    assert engine.dialect.name == "postgresql"
    first = DecisionSink(settings, engine).run(until_idle_s=3)
    assert first.bad["decisions"] == 1
    assert first.written == {"events": n, "decisions": n, "outcomes": 100}
    counts = store.row_counts(engine)
    assert (counts["events"], counts["decisions"], counts["outcomes"]) == (n, n, 100)

    # a new group replays everything from the start: nothing lands twice
    replay = DecisionSink(settings.model_copy(update={"sink_group_id": group_id + "-r"}), engine)
    second = replay.run(until_idle_s=3)
    assert sum(second.read.values()) == sum(first.read.values())
    assert sum(second.written.values()) == 0
    assert store.row_counts(engine) == counts
    # the same group resumes after its committed offsets: nothing to read
    again = DecisionSink(settings, engine).run(until_idle_s=2)
    assert sum(again.read.values()) == 0

    frame = store.labelled_frame(engine, load_spec("credit_data"))
    assert len(frame) == 100
    assert (frame["Status"] == "bad").sum() == 34
    assert frame["Amount"].notna().all()
    engine.dispose()
