"""Records that used to stall a partition or the sink forever: events producers compressed
(gzip, snappy, lz4, zstd) are decided; an event with a NUL character is dead-lettered and the
sink lands that dead letter in the real PostgreSQL and moves on."""

from __future__ import annotations

import json
from collections.abc import Callable

from kafka import KafkaProducer
from sqlalchemy import text

from storage import store
from tests.integration.streaming import accounted, deciding, make_topics
from tests.integration.workerproc import wait_for
from workers.settings import SinkSettings, WorkerSettings
from workers.sink import DecisionSink
from workers.testing import valid_event

CODECS = ("gzip", "snappy", "lz4", "zstd")
PER_CODEC = 25


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

    def all_accounted() -> bool:
        ids, dlq = accounted(bootstrap, topics)
        return sum(ids.values()) + len(dlq) >= len(sent) + 1

    with deciding(settings, f"test-{group_id}"):
        wait_for(all_accounted, 60, "every compressed event decided and the NUL one dead-lettered")
    ids, dlq = accounted(bootstrap, topics)
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
