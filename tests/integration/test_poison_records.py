"""Records that used to stall a partition or the sink forever: events producers compressed
(gzip, snappy, lz4, zstd) are decided; an event with a NUL character is dead-lettered and the
sink lands that dead letter in the real PostgreSQL and moves on; records the client cannot
decode (a codec library missing) are dead-lettered and the partition moves on."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import kafka.codec
import pytest
from kafka import KafkaProducer
from prometheus_client import REGISTRY
from sqlalchemy import text

from storage import store
from tests.integration.streaming import CommittedReader, deciding, make_topics
from tests.integration.workerproc import wait_for
from workers.settings import SinkSettings, Topics, WorkerSettings
from workers.sink import DecisionSink
from workers.testing import valid_event

CODECS = ("gzip", "snappy", "lz4", "zstd")
PER_CODEC = 25


class _Accounting:
    """The committed decisions and dead letters of ``topics``, read as they commit. Leaving the
    ``with`` (after the loop's own ``with``: the loop is stopped) reads on until nothing new
    commits for 3 s and keeps what :func:`accounted` would return in ``final``."""

    def __init__(self, bootstrap: str, topics: Topics) -> None:
        self.topics = topics
        self.reader = CommittedReader(bootstrap, topics.decisions, topics.dlq)
        self.final: tuple[Counter[str], list[dict[str, Any]]] = (Counter(), [])

    def at_least(self, n: int) -> Callable[[], bool]:
        """Whether ``n`` records are accounted for: decisions (each time) + dead letters."""

        def check() -> bool:
            self.reader.poll()
            ids, dlq = self.reader.accounted(self.topics)
            return sum(ids.values()) + len(dlq) >= n

        return check

    def __enter__(self) -> _Accounting:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                self.reader.drain()
                self.final = self.reader.accounted(self.topics)
        finally:
            self.reader.close()


def test_compressed_and_nul_events_never_stall_anything(
    bootstrap: str, make_topic: Callable[..., str], group_id: str, pg_url: str
) -> None:
    topics = make_topics(make_topic, partitions=2)
    sent = []
    for c, codec in enumerate(CODECS):
        producer = KafkaProducer(bootstrap_servers=bootstrap, compression_type=codec)
        for i in range(c * PER_CODEC, (c + 1) * PER_CODEC):
            producer.send(
                topics.events, key=f"app-{i}".encode(), value=json.dumps(valid_event(i)).encode()
            )
            sent.append(f"evt-{i}")
        producer.flush()
        producer.close()
    poison = {**valid_event(999), "entity_id": "ent\u0000x"}
    with KafkaProducer(bootstrap_servers=bootstrap, compression_type="snappy") as producer:
        producer.send(topics.events, key=b"app-999", value=json.dumps(poison).encode())

    settings = WorkerSettings(topics=topics, group_id=group_id, max_batch_size=50, max_wait_ms=20)

    with _Accounting(bootstrap, topics) as seen, deciding(settings, f"test-{group_id}"):
        wait_for(
            seen.at_least(len(sent) + 1),
            60,
            "every compressed event decided and the NUL one dead-lettered",
            poll=0,
        )
    ids, dlq = seen.final
    assert set(ids) == set(sent) and max(ids.values()) == 1
    assert [(d["reason"], d["stage"]) for d in dlq] == [("validation", "validate")]

    sink_settings = SinkSettings(topics=topics, sink_group_id=group_id, database_url=pg_url)
    db = store.make_engine(pg_url)
    stats = DecisionSink(sink_settings, db).run(until_idle_s=3)
    assert stats.db_errors == 0 and stats.written["dlq"] == 1
    assert stats.written["decisions"] == len(sent)
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM dead_letters")).scalar() == 1
    db.dispose()


def _send(bootstrap: str, topic: str, ids: range, codec: str | None) -> list[str]:
    """Events ``ids`` to partition 0 of ``topic`` in one producer batch; their event ids."""
    with KafkaProducer(bootstrap_servers=bootstrap, compression_type=codec, linger_ms=50) as p:
        for i in ids:
            p.send(
                topic,
                key=f"app-{i}".encode(),
                value=json.dumps(valid_event(i)).encode(),
                partition=0,
            )
    return [f"evt-{i}" for i in ids]


def test_records_the_client_cannot_decode_are_dead_lettered_and_the_partition_moves_on(
    bootstrap: str,
    make_topic: Callable[..., str],
    group_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topics = make_topics(make_topic, partitions=1)
    decided = _send(bootstrap, topics.events, range(0, 5), None)
    _send(bootstrap, topics.events, range(5, 15), "snappy")  # offsets 5-14, one batch
    decided += _send(bootstrap, topics.events, range(15, 25), None)
    # as on a host without the snappy library: kafka-python raises UnsupportedCodecError
    monkeypatch.setattr(kafka.codec, "has_snappy", lambda: False)
    settings = WorkerSettings(
        topics=topics,
        group_id=group_id,
        kafka_client="kafka-python",
        max_batch_size=50,
        max_wait_ms=20,
    )
    labels = {"flow": "credit_data", "reason": "undecodable", "stage": "consume"}
    before = REGISTRY.get_sample_value("decisionflow_dlq_total", labels) or 0.0

    with (
        _Accounting(bootstrap, topics) as seen,
        deciding(settings, f"test-{group_id}") as (loop, _thread),
    ):
        wait_for(lambda: loop.consumer is not None, 30, "the consumer", poll=0.1)
        consumer = loop.consumer
        wait_for(seen.at_least(25), 60, "the snappy events dead-lettered and the rest decided", 0)
        assert loop.consumer is consumer, "the clients were rebuilt for a data error"
    ids, dlq = seen.final
    assert set(ids) == set(decided) and max(ids.values()) == 1
    assert sorted(
        (d["reason"], d["stage"], d["source_partition"], d["source_offset"]) for d in dlq
    ) == [("undecodable", "consume", 0, offset) for offset in range(5, 15)]
    assert all("UnsupportedCodecError" in d["error_message"] for d in dlq)
    after = REGISTRY.get_sample_value("decisionflow_dlq_total", labels) or 0.0
    assert after - before == 10


def test_out_of_range_values_and_event_times_are_dead_lettered_and_the_rest_decided(
    bootstrap: str, make_topic: Callable[..., str], group_id: str
) -> None:
    topics = make_topics(make_topic, partitions=1)
    bad = {
        "evt-900": {**valid_event(900), "features": {"Amount": -1e308}},
        "evt-901": {**valid_event(901), "features": {"Age": 400}},
        "evt-902": {**valid_event(902), "event_time": "9999-12-31T23:59:59+00:00"},
        "evt-903": {**valid_event(903), "event_time": "0001-01-01T00:00:00+00:00"},
    }
    with KafkaProducer(bootstrap_servers=bootstrap) as producer:
        for i in range(20):
            event = bad.get(f"evt-{900 + i}") if i < 4 else None
            value = event or valid_event(i)
            producer.send(topics.events, key=b"k", value=json.dumps(value).encode())
    settings = WorkerSettings(topics=topics, group_id=group_id, max_batch_size=50, max_wait_ms=20)

    with _Accounting(bootstrap, topics) as seen, deciding(settings, f"range-{group_id}"):
        wait_for(seen.at_least(20), 60, "every event decided or dead-lettered", poll=0)
    ids, dlq = seen.final
    assert set(ids) == {f"evt-{i}" for i in range(4, 20)} and max(ids.values()) == 1
    assert [d["reason"] for d in dlq] == ["out_of_range"] * 4
    messages = " | ".join(d["error_message"] for d in dlq)
    for needle in ("Amount", "-1e+308", "Age", "400", "9999", "0001"):
        assert needle in messages, f"{needle!r} not named in {messages}"
