"""Closing a Kafka client releases it at once: its threads end and it stops connecting.

A loop replaces its clients after every Kafka error (a broker outage may replace them many
times); a client that lived on after ``close()`` would keep threads and reconnect attempts
per replacement until some later garbage collection.
"""

from __future__ import annotations

import gc
import os
import time
import uuid
from collections.abc import Callable

import pytest

from devtools.launch import free_port
from tests.integration.streaming import make_topics
from workers import kafka_confluent
from workers.api.bridge import KafkaBridge
from workers.api.waiters import DecisionHub
from workers.kafka_client import ClientError, ClientName, make_consumer, make_producer
from workers.settings import ApiSettings, KafkaSettings


def _os_threads() -> int:
    """Threads of this process, native ones (librdkafka's) included."""
    return len(os.listdir("/proc/self/task"))


def _baseline() -> int:
    """Threads now, after collecting what earlier tests left for the collector."""
    gc.collect()
    return _os_threads()


def _settles_at(count: int, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while _os_threads() > count:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_closed_producer_leaves_no_thread_behind(
    bootstrap: str, kafka_client: ClientName
) -> None:
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    before = _baseline()
    producer = make_producer(kafka_client, kafka, transactional_id=f"close-{uuid.uuid4().hex[:8]}")
    producer.begin_transaction()
    producer.abort_transaction()
    assert _os_threads() > before, "a live client runs threads of its own"
    producer.close()
    assert _settles_at(before), f"{_os_threads() - before} threads left after close()"


def test_a_closed_consumer_leaves_no_thread_behind(
    bootstrap: str, kafka_client: ClientName, make_topic: Callable[..., str], group_id: str
) -> None:
    topic = make_topic()
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    before = _baseline()
    consumer = make_consumer(kafka_client, kafka, group_id=group_id, topics=[topic])
    consumer.poll(200, 10)
    assert _os_threads() > before, "a live client runs threads of its own"
    consumer.close()
    assert _settles_at(before), f"{_os_threads() - before} threads left after close()"


def test_a_closed_api_bridge_leaves_no_thread_behind(make_topic: Callable[..., str]) -> None:
    topics = make_topics(make_topic, partitions=1)
    bridge = KafkaBridge(ApiSettings(topics=topics, database_url=None))
    before = _baseline()
    bridge.start(DecisionHub(size=100, max_waiters=10))
    assert _os_threads() > before, "a live bridge runs threads of its own"
    bridge.close()
    assert _settles_at(before), f"{_os_threads() - before} threads left after close()"


def test_a_producer_that_cannot_start_leaves_no_thread_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a loop retries its producer all through a broker outage: each failed start must not
    # leave a client behind that keeps reconnecting
    monkeypatch.setattr(kafka_confluent, "_TIMEOUT_S", 2.0)
    nowhere = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}")  # nothing listens
    before = _baseline()
    with pytest.raises(ClientError):
        make_producer("confluent", nowhere, transactional_id=f"close-{uuid.uuid4().hex[:8]}")
    assert _settles_at(before), f"{_os_threads() - before} threads left after a failed start"
