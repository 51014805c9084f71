"""A repeated event_id is decided once, against the real Kafka and Redis: repeats in the same
partition, in another partition, and after the worker restarted all become duplicate records
pointing at the first occurrence."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

from kafka import KafkaProducer

from tests.integration.streaming import deciding, make_topics, read_committed
from tests.integration.workerproc import wait_for
from workers.idempotency import RedisIdempotency
from workers.replay import read_topic
from workers.settings import WorkerSettings
from workers.testing import valid_event

N = 300


def _send(bootstrap: str, topic: str, ids: range, key_prefix: str = "app") -> None:
    with KafkaProducer(bootstrap_servers=bootstrap, acks="all") as producer:
        for i in ids:
            key = f"{key_prefix}-{i}".encode()
            producer.send(topic, key=key, value=json.dumps(valid_event(i)).encode())


def test_a_repeated_event_id_is_decided_once_across_partitions_and_restarts(
    bootstrap: str,
    make_topic: Callable[..., str],
    group_id: str,
    worker_settings: WorkerSettings,
) -> None:
    topics = make_topics(make_topic, partitions=3)
    settings = WorkerSettings(topics=topics, group_id=group_id, max_batch_size=100, max_wait_ms=20)
    claims = RedisIdempotency(worker_settings.redis_url, f"{group_id}-{uuid.uuid4().hex}", 600)

    def seen(topic: str, n: int) -> Callable[[], bool]:
        return lambda: len(read_committed(bootstrap, topic, idle_ms=500)) >= n

    _send(bootstrap, topics.events, range(N))
    _send(bootstrap, topics.events, range(50))  # same ids, same keys: same partitions
    _send(bootstrap, topics.events, range(50, 80), key_prefix="other")  # other partitions
    with deciding(settings, f"idem-{group_id}", claims):
        wait_for(seen(topics.duplicates, 80), 60, "80 duplicates recorded")
    _send(bootstrap, topics.events, range(80, 100))  # after a restart: claims survive
    with deciding(settings, f"idem-{group_id}", claims):
        wait_for(seen(topics.duplicates, 100), 60, "100 duplicates recorded")

    decisions = read_committed(bootstrap, topics.decisions)
    ids = [d["event_id"] for d in decisions]
    assert sorted(ids) == sorted(f"evt-{i}" for i in range(N)), "an event_id decided twice"
    dups = read_committed(bootstrap, topics.duplicates)
    assert sorted(d["event_id"] for d in dups) == sorted(f"evt-{i}" for i in range(100))
    # every occurrence of a repeated id is either the one first claimed or a duplicate of it
    where: dict[str, set[str]] = {}
    for rec in read_topic(bootstrap, topics.events):
        event_id = json.loads(rec.value or b"{}")["event_id"]
        where.setdefault(event_id, set()).add(f"{rec.topic}/{rec.partition}/{rec.offset}")
    for d in dups:
        assert d["first"] != d["duplicate"]
        assert {d["first"], d["duplicate"]} == where[d["event_id"]]
    claims.close()


def test_redis_claims_answer_like_the_in_memory_store(worker_settings: WorkerSettings) -> None:
    """The Redis store and the in-package double agree on every answer: claimed now, held by
    this same record, held by another (named), in one batch and across batches."""
    from workers.idempotency import MemoryIdempotency

    claims = RedisIdempotency(worker_settings.redis_url, f"probe-{uuid.uuid4().hex}", 600)
    memory = MemoryIdempotency()
    ids = ["a", 'quote"d', "snow \u2603", "a"]  # the repeat within the batch is a duplicate
    owners = ["t/0/1", "t/0/2", "t/1/7", "t/2/9"]
    steps = [
        (ids, owners),
        (ids[:3], owners[:3]),  # re-read by the same records: still theirs
        (["a", "b"], ["t/5/5", "t/5/6"]),
        ([], []),
    ]
    answers = [claims.claim(i, o) for i, o in steps]
    assert answers == [memory.claim(i, o) for i, o in steps]
    assert answers[0] == [None, None, None, "t/0/1"] and answers[2] == ["t/0/1", None]
    claims.close()
