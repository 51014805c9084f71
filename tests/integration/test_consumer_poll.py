"""``Consumer.poll(timeout_ms, max_records)`` hands over the first record as soon as it
arrives, on both clients: an idle worker must not hold it for the rest of the time-out
(confluent-kafka's ``consume()`` waits for ``max_records`` or the whole time-out)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from kafka import KafkaProducer

from tests.integration.workerproc import wait_for
from workers.kafka_client import ClientName, RawRecord, make_consumer
from workers.settings import KafkaSettings


def test_poll_returns_the_first_record_as_soon_as_it_arrives(
    bootstrap: str, make_topic: Callable[..., str], group_id: str, kafka_client: ClientName
) -> None:
    topic = make_topic("poll", 1)
    consumer = make_consumer(
        kafka_client, KafkaSettings(bootstrap_servers=bootstrap), group_id=group_id, topics=[topic]
    )
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        wait_for(lambda: bool(consumer.poll(100, 500) or consumer.assignment()), 60, "joined")
        sent_at: list[float] = []

        def send_later() -> None:
            time.sleep(1.0)
            sent_at.append(time.monotonic())  # before the send: the record may be read first
            producer.send(topic, b"first").get(timeout=10)

        threading.Thread(target=send_later, daemon=True).start()
        got: list[RawRecord] = []
        deadline = time.monotonic() + 20
        while not got and time.monotonic() < deadline:
            got = consumer.poll(8_000, 500)  # far longer than the record takes to arrive
        returned_at = time.monotonic()
        assert [r.value for r in got] == [b"first"]
        assert returned_at - sent_at[0] < 1.5, f"held {returned_at - sent_at[0]:.1f}s"
    finally:
        producer.close()
        consumer.close()
