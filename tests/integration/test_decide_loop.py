"""The decision loop against the real broker, in-process, with the in-package model double."""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.integration.streaming import CommittedReader, deciding, make_topics
from workers.malformed import malformed_corpus
from workers.producer import EventProducer
from workers.settings import WorkerSettings
from workers.testing import valid_event


def _dlq_metric_total() -> float:
    from workers import metrics

    return sum(
        s.value for m in metrics.DLQ.collect() for s in m.samples if s.name.endswith("_total")
    )


def test_loop_decides_every_event_once_and_dead_letters_the_bad(
    bootstrap: str, make_topic: Callable[..., str], group_id: str
) -> None:
    topics = make_topics(make_topic)
    settings = WorkerSettings(topics=topics, group_id=group_id, max_batch_size=200, max_wait_ms=50)
    corpus = malformed_corpus(settings.max_message_bytes)
    n = 2000
    with EventProducer(bootstrap, topic=topics.events) as producer:
        for i in range(n):
            producer.send_raw(f"app-{i}", json.dumps(valid_event(i, 300.0 + i)).encode())
            if i % 100 == 0:
                producer.send_raw(f"app-{i}", corpus[(i // 100) % len(corpus)][1])
    dlq_metric_before = _dlq_metric_total()
    reader = CommittedReader(bootstrap, topics.decisions, topics.dlq)
    try:
        with deciding(settings, f"test-{group_id}") as (loop, thread):
            reader.wait_accounted(topics, lambda ids, _: sum(ids.values()) >= n, idle_ms=0)
        assert not thread.is_alive(), "the loop did not stop on request"
        reader.drain()  # the loop is stopped: anything it committed late shows now
        ids, dlq = reader.accounted(topics)
    finally:
        reader.close()
    assert set(ids) == {f"evt-{i}" for i in range(n)}
    assert max(ids.values()) == 1, "an event was decided twice"
    assert len(dlq) == n // 100
    assert {d["reason"] for d in dlq} >= {"invalid_json", "not_utf8", "oversize"}
    assert loop.committed_batches >= n // 200
    assert _dlq_metric_total() - dlq_metric_before == len(dlq), "each dead letter is counted"
