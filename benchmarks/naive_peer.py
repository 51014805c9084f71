"""The naive peer: a dispatcher turns every Kafka event into one Celery task (same Redis).

Worker: ``celery -A benchmarks.naive_peer worker --pool=solo -Q <queue>``; each task decides
ONE event with the same :class:`~workers.engine.DecisionEngine` (batch of one) and sends the
decision to Kafka (idempotent producer, no transaction: per-event tasks cannot put the
consumed offset in the same transaction). The Celery options are the production app's
(``acks_late``, prefetch 1, JSON).

Dispatcher: ``python -m benchmarks.naive_peer dispatch --queue <queue>`` consumes the events
topic (kafka-python, auto commit) and sends one task per record. Settings come from
``DECISIONFLOW_*`` like a worker's.
"""

from __future__ import annotations

import argparse
import base64
import signal
import threading
from typing import Any

from celery import Celery

from workers.settings import WorkerSettings

__all__ = ["app", "decide_one", "dispatch"]

TASK = "decisionflow_bench.decide_one"
_settings = WorkerSettings()

app = Celery("decisionflow-bench-peer", broker=_settings.redis_url)
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)

_state: dict[str, Any] = {}


def _runtime() -> tuple[Any, Any]:
    """Engine and producer, built once per worker process (the model loads here)."""
    if not _state:
        from kafka import KafkaProducer

        from workers.bootstep import build_loop

        loop, _holder = build_loop(_settings, "naive-peer")
        _state["engine"] = loop.engine
        _state["producer"] = KafkaProducer(linger_ms=5, **_settings.kafka.client_options())
    return _state["engine"], _state["producer"]


@app.task(name=TASK)  # type: ignore[untyped-decorator]
def decide_one(value_b64: str, key: str | None, topic: str, partition: int, offset: int) -> None:
    """Decide one event and send its decision (or dead letter) to Kafka."""
    from workers.kafka_client import RawRecord

    engine, producer = _runtime()
    rec = RawRecord(
        topic, partition, offset, key.encode() if key else None, base64.b64decode(value_b64)
    )
    for out_topic, out_key, value in engine.process([rec]).records(_settings.topics):
        producer.send(out_topic, key=out_key, value=value)


def dispatch(queue: str, stop: threading.Event) -> int:
    """Send one task per consumed event until ``stop``; returns how many were sent."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        _settings.topics.events,
        group_id=_settings.group_id,
        auto_offset_reset="earliest",
        enable_auto_commit=True,
        **_settings.kafka.client_options(),
    )
    sent = 0
    print("READY dispatcher", flush=True)
    try:
        while not stop.is_set():
            for msgs in consumer.poll(timeout_ms=100).values():
                for m in msgs:
                    app.send_task(
                        TASK,
                        args=[
                            base64.b64encode(m.value or b"").decode(),
                            m.key.decode() if m.key else None,
                            m.topic,
                            m.partition,
                            m.offset,
                        ],
                        queue=queue,
                    )
                    sent += 1
    finally:
        consumer.close()
    return sent


def main(argv: list[str] | None = None) -> int:
    """``dispatch --queue Q``: run the dispatcher until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.naive_peer")
    parser.add_argument("command", choices=["dispatch"])
    parser.add_argument("--queue", required=True)
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    n = dispatch(args.queue, stop)
    print(f"STOPPED dispatched={n}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
