"""The sink against the real broker and the real PostgreSQL (a schema of its own per test)."""

from __future__ import annotations

import json
from collections.abc import Callable

from kafka import KafkaProducer
from sqlalchemy import Engine, text

from decisioning.contracts import Decision
from models.spec import load_spec
from storage import store
from tests.integration.streaming import make_topics
from workers.settings import SinkSettings
from workers.sink import DecisionSink, publish_outcomes, retry_quarantined
from workers.testing import sample_dead_letter, sample_decision, valid_event


def _decision(i: int) -> Decision:
    return sample_decision(i)


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


def _dead_letter(offset: int, message: str) -> bytes:
    return sample_dead_letter(offset, message).model_dump_json().encode()


def test_rows_postgresql_refuses_are_quarantined_and_the_rest_lands(
    bootstrap: str, make_topic: Callable[..., str], group_id: str, pg_url: str
) -> None:
    """Valid records that SQLite stores but PostgreSQL refuses for their content: a rule
    longer than its VARCHAR(256), a model_version past INTEGER, a NUL in a TEXT column."""
    topics = make_topics(make_topic, partitions=1)
    too_long = _decision(3).model_copy(update={"rule": "r" * 300})
    out_of_range = _decision(5).model_copy(update={"model_version": 2**40})
    decisions = [_decision(i) for i in range(10)]
    decisions[3], decisions[5] = too_long, out_of_range
    dead_letters = [_dead_letter(1, "boom"), _dead_letter(2, "bad byte \x00 here")]
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    sent = {("decisions", i): d.model_dump_json().encode() for i, d in enumerate(decisions)}
    sent |= {("dlq", i): raw for i, raw in enumerate(dead_letters)}
    for (kind, _i), raw in sent.items():
        producer.send(getattr(topics, kind), value=raw)
    producer.flush()
    producer.close()
    settings = SinkSettings(topics=topics, sink_group_id=group_id)
    engine: Engine = store.make_engine(pg_url)

    stats = DecisionSink(settings, engine).run(until_idle_s=3)

    assert stats.db_errors == 0
    assert stats.written == {"decisions": 8, "dlq": 1}
    assert stats.quarantined == {"decisions": 2, "dlq": 1}
    held = {(q.kind, q.source_offset): q for q in store.read_quarantine(engine)}
    assert {k: q.error_class for k, q in held.items()} == {
        ("decisions", 3): "StringDataRightTruncation",
        ("decisions", 5): "NumericValueOutOfRange",
        ("dlq", 1): "DataError",  # psycopg refuses a NUL before sending
    }
    assert all(q.raw == sent[key] and q.stage == "store" for key, q in held.items())
    assert held["decisions", 3].error.startswith("[22001]")
    # the offsets moved past the refused records: the group has nothing left to read
    again = DecisionSink(settings, engine).run(until_idle_s=2)
    assert sum(again.read.values()) == 0

    # after a fix (a wider column) the operator lands what the fix covers
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE decisions ALTER COLUMN rule TYPE text"))
    retried = retry_quarantined(engine)
    assert (retried.landed, retried.refused) == (1, 2)
    assert store.row_counts(engine)["decisions"] == 9
    engine.dispose()
