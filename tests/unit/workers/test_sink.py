"""The sink lands every kind of record in the store and commits only what it landed: a bad
record is skipped (it already sits in the DLQ), a database failure rewinds the batch."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from decisioning.contracts import Outcome
from storage import store
from workers.kafka_client import TP, Offsets, RawRecord
from workers.settings import SinkSettings
from workers.sink import DecisionSink
from workers.testing import valid_event


class TopicsConsumer:
    """Records of several topics, one poll per batch; ``seek`` re-delivers from there."""

    def __init__(self, logs: dict[str, list[bytes]]) -> None:
        self.logs = logs
        self.position: dict[str, int] = defaultdict(int)
        self.commits: list[dict[TP, int]] = []
        self.seeks: list[tuple[TP, int]] = []

    def assignment(self) -> set[TP]:
        return {(t, 0) for t in self.logs}

    def poll(self, timeout_ms: int, max_records: int) -> list[RawRecord]:
        out = []
        for topic, values in self.logs.items():
            start = self.position[topic]
            out += [RawRecord(topic, 0, start + i, None, v) for i, v in enumerate(values[start:])]
            self.position[topic] = len(values)
        return out

    def commit(self, offsets: Offsets) -> None:
        self.commits.append(dict(offsets))

    def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))
        self.position[tp[0]] = offset

    def close(self) -> None:
        return None


def _sink(tmp_path: Path, consumer: TopicsConsumer) -> DecisionSink:
    settings = SinkSettings(_env_file=None, database_url=f"sqlite:///{tmp_path / 'store.db'}")
    sink = DecisionSink(settings)
    sink._consumer = lambda: consumer  # type: ignore[method-assign]
    return sink


def _logs() -> dict[str, list[bytes]]:
    events = [json.dumps(valid_event(i)).encode() for i in range(3)]
    outcome = Outcome(
        event_id="evt-1", entity_id="app-000001", label="bad", observed_at="2026-12-01T00:00:00Z"
    )
    return {
        "events": [*events, b'{"not": json'],  # the last one the worker dead-lettered
        "outcomes": [outcome.model_dump_json().encode()],
    }


def test_records_land_and_offsets_follow(tmp_path: Path) -> None:
    consumer = TopicsConsumer(_logs())
    stats = _sink(tmp_path, consumer).run(until_idle_s=0.0)
    assert stats.written["events"] == 3 and stats.written["outcomes"] == 1
    assert stats.bad["events"] == 1  # skipped, not retried forever
    assert consumer.commits == [{("events", 0): 4, ("outcomes", 0): 1}]
    engine = store.make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar() == 3


def test_a_database_failure_rewinds_and_lands_the_batch_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    consumer = TopicsConsumer(_logs())
    sink = _sink(tmp_path, consumer)
    real = store.write_events
    failures = iter([True])

    def flaky(conn: Any, events: Any) -> int:
        if next(failures, False):
            raise OperationalError("INSERT", {}, Exception("server closed the connection"))
        return real(conn, events)

    monkeypatch.setattr(store, "write_events", flaky)
    monkeypatch.setattr(sink._stop, "wait", lambda _s: False)  # no back-off in a unit test
    stats = sink.run(until_idle_s=0.0)
    assert stats.db_errors == 1 and stats.written["events"] == 3
    assert (("events", 0), 0) in consumer.seeks
    assert len(consumer.commits) == 1  # only the landed batch was committed


def test_a_record_the_store_refuses_is_skipped_not_retried_forever(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import DataError

    consumer = TopicsConsumer(_logs())
    sink = _sink(tmp_path, consumer)
    real = store.write_events

    def picky(conn: Any, events: Any) -> int:
        if any(e.event_id == "evt-1" for e in events):
            raise DataError("INSERT", {}, Exception("text fields cannot contain NUL"))
        return real(conn, events)

    monkeypatch.setattr(store, "write_events", picky)
    stats = sink.run(until_idle_s=0.0)
    assert stats.refused["events"] == 1 and stats.written["events"] == 2
    assert stats.db_errors == 0 and len(consumer.commits) == 1  # the partition moves on
