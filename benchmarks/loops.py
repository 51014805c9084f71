"""Benchmark-only stream loops, run as their own processes (like a worker).

``python -m benchmarks.loops ceiling --backend kafka-python --value-bytes 900 [--no-eos]``
    The ceiling: consume -> micro-batch -> produce one fixed-size record per input -> commit,
    with the same client options, batcher, partitions and (with ``--eos``) the same Kafka
    transaction carrying the offsets as the decision loop, but no parsing or scoring.

``python -m benchmarks.loops decide --backend confluent``
    The decision loop's work (engine + one transaction per batch) over the
    :mod:`benchmarks.kafka_backends` adapter, so both clients run the same code. This is a
    benchmark variant: no rebalance bookkeeping, no hot reload, no abort/rewind path. The
    production worker is ``celery ... --decide`` (kafka-python only).

Settings come from ``DECISIONFLOW_*`` like a worker's (topics, group, batch size, max wait).
SIGTERM stops the loop after the batch in hand.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from typing import Any

from benchmarks.kafka_backends import (
    BACKENDS,
    Backend,
    StreamConsumer,
    StreamProducer,
    make_consumer,
    make_producer,
)
from decisioning.contracts import encode_record
from workers.batcher import MicroBatcher
from workers.engine import RawRecord
from workers.settings import WorkerSettings

__all__ = ["main", "run_loop"]

log = logging.getLogger("benchmarks.loops")


def _offsets(batch: list[RawRecord]) -> dict[tuple[str, int], int]:
    out: dict[tuple[str, int], int] = {}
    for rec in batch:
        key = (rec.topic, rec.partition)
        if rec.offset + 1 > out.get(key, -1):
            out[key] = rec.offset + 1
    return out


def run_loop(
    mode: str,
    backend: Backend,
    settings: WorkerSettings,
    *,
    eos: bool,
    value_bytes: int,
    name: str,
    stop: threading.Event,
) -> int:
    """Run ``mode`` ("ceiling" or "decide") until ``stop``; returns the records handled."""
    engine: Any = None
    if mode == "decide":
        from workers.bootstep import build_loop

        loop, _holder = build_loop(settings, name)  # the production wiring of the engine
        engine = loop.engine
    blob = b"x" * value_bytes
    topics = settings.topics
    consumer: StreamConsumer = make_consumer(
        backend,
        settings.kafka,
        group_id=settings.group_id,
        topic=topics.events,
        max_poll_records=settings.max_batch_size,
    )
    producer: StreamProducer = make_producer(
        backend,
        settings.kafka,
        transactional_id=f"{settings.transactional_id_prefix}-{name}" if eos else None,
        transaction_timeout_ms=settings.transaction_timeout_ms,
    )
    batcher: MicroBatcher[RawRecord] = MicroBatcher(settings.max_batch_size, settings.max_wait_ms)
    handled = 0
    print(f"READY {mode} {backend} eos={eos}", flush=True)
    try:
        while not stop.is_set():
            batcher.add(
                consumer.poll(batcher.poll_timeout_ms(), max(batcher.room(), 1)),
            )
            if not batcher.ready():
                continue
            batch = batcher.drain()
            if eos:
                producer.begin_transaction()
            if engine is None:
                for rec in batch:
                    producer.send(topics.decisions, rec.key, blob)
            else:
                result = engine.process(batch)
                for d in result.decisions:
                    producer.send(topics.decisions, d.entity_id.encode(), encode_record(d))
                for d in result.shadow:
                    producer.send(topics.shadow, d.entity_id.encode(), encode_record(d))
                for dl in result.dlq:
                    key = dl.source_key.encode() if dl.source_key is not None else None
                    producer.send(topics.dlq, key, encode_record(dl))
            offsets = _offsets(batch)
            if eos:
                producer.send_offsets_to_transaction(offsets, consumer)
                producer.commit_transaction()
            else:
                producer.flush()
                consumer.commit(offsets)
            handled += len(batch)
    finally:
        consumer.close()
        producer.close()
        if engine is not None:
            engine.close()
    return handled


def main(argv: list[str] | None = None) -> int:
    """Command line entry (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loops")
    parser.add_argument("mode", choices=["ceiling", "decide"])
    parser.add_argument("--backend", choices=BACKENDS, default="kafka-python")
    parser.add_argument("--eos", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--value-bytes", type=int, default=900)
    parser.add_argument("--name", default=f"bench-loop-{int(time.time())}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    n = run_loop(
        args.mode,
        args.backend,
        WorkerSettings(),
        eos=args.eos,
        value_bytes=args.value_bytes,
        name=args.name,
        stop=stop,
    )
    print(f"STOPPED handled={n}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
