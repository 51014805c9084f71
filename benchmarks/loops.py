"""The ceiling: the decision loop's Kafka work without the decision, run as its own process.

``python -m benchmarks.loops ceiling --client confluent --value-bytes 900 --name NAME``

consume -> the worker's :class:`~workers.batcher.MicroBatcher` -> one record of
``--value-bytes`` per input -> the consumed offsets and the records committed in one Kafka
transaction. Clients come from :mod:`workers.kafka_client` (``make_consumer`` /
``make_producer``, the production seam), with the worker's options, and a transaction closes
exactly when a worker's would (:func:`transaction_due`: per model batch when
``DECISIONFLOW_TRANSACTION_MAX_EVENTS`` is 0, else at that many events or
``DECISIONFLOW_TRANSACTION_MAX_MS``). No parsing, scoring, rebalance bookkeeping or
abort/rewind: what is left is the fastest a 1-process exactly-once loop on that client can go.

Settings come from ``DECISIONFLOW_*`` like a worker's (topics, group, batch size, max wait,
transaction size, id prefix). SIGTERM stops the loop after committing what it holds.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass, field

from workers.batcher import MicroBatcher
from workers.kafka_client import (
    CLIENTS,
    TP,
    ClientName,
    Consumer,
    RawRecord,
    TransactionalProducer,
    make_consumer,
    make_producer,
)
from workers.settings import WorkerSettings

__all__ = ["main", "run_ceiling", "transaction_due"]

log = logging.getLogger("benchmarks.loops")


def transaction_due(events: int, age_ms: float, max_events: int, max_ms: int) -> bool:
    """Whether an open transaction commits now, by the worker's rule (one per batch when
    ``max_events`` is 0, else at ``max_events`` events or ``max_ms`` of age)."""
    if max_events <= 0:
        return True
    return events >= max_events or age_ms >= max_ms


@dataclass
class _Txn:
    opened_at: float = field(default_factory=time.monotonic)
    events: int = 0
    offsets: dict[TP, int] = field(default_factory=dict)

    def add(self, batch: list[RawRecord]) -> None:
        self.events += len(batch)
        for rec in batch:
            tp = (rec.topic, rec.partition)
            if rec.offset >= self.offsets.get(tp, 0):
                self.offsets[tp] = rec.offset + 1

    def age_ms(self) -> float:
        return (time.monotonic() - self.opened_at) * 1000.0


def run_ceiling(
    client: ClientName,
    settings: WorkerSettings,
    *,
    value_bytes: int,
    name: str,
    stop: threading.Event,
) -> int:
    """Run until ``stop``; returns the records committed."""
    blob = b"x" * value_bytes
    out_topic = settings.topics.decisions
    consumer: Consumer = make_consumer(
        client,
        settings.kafka,
        group_id=settings.group_id,
        topics=[settings.topics.events],
        max_poll_records=settings.max_batch_size,
        max_poll_interval_ms=settings.max_poll_interval_ms,
    )
    producer: TransactionalProducer = make_producer(
        client,
        settings.kafka,
        transactional_id=f"{settings.transactional_id_prefix}-{name}",
        transaction_timeout_ms=settings.transaction_timeout_ms,
    )
    batcher: MicroBatcher[RawRecord] = MicroBatcher(settings.max_batch_size, settings.max_wait_ms)
    max_events, max_ms = settings.transaction_max_events, settings.transaction_max_ms
    txn: _Txn | None = None
    committed = 0

    def commit() -> None:
        nonlocal txn, committed
        assert txn is not None
        producer.flush()  # as the worker: every record acknowledged before the offsets
        producer.send_offsets_to_transaction(txn.offsets, consumer.group_metadata())
        producer.commit_transaction()
        committed += txn.events
        txn = None

    print(f"READY ceiling {client} transaction_max_events={max_events}", flush=True)
    try:
        while not stop.is_set():
            timeout = batcher.poll_timeout_ms()
            if txn is not None and max_events > 0:
                timeout = min(timeout, max(int(max_ms - txn.age_ms()), 0))
            records = consumer.poll(timeout, max(batcher.room(), 1))
            if records:
                oldest = min(r.timestamp for r in records)
                batcher.add(records, waited=(time.time() * 1000.0 - oldest) / 1000.0)
            if batcher.ready():
                batch = batcher.drain()
                if txn is None:
                    producer.begin_transaction()
                    txn = _Txn()
                for rec in batch:
                    producer.send(out_topic, rec.key, blob)
                txn.add(batch)
            if txn is not None and transaction_due(txn.events, txn.age_ms(), max_events, max_ms):
                commit()
        if txn is not None:
            commit()
    finally:
        consumer.close()
        producer.close()
    return committed


def main(argv: list[str] | None = None) -> int:
    """Command line entry (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loops")
    parser.add_argument("mode", choices=["ceiling"])
    parser.add_argument("--client", choices=CLIENTS, default="confluent")
    parser.add_argument("--value-bytes", type=int, default=900)
    parser.add_argument("--name", default=f"bench-loop-{int(time.time())}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    n = run_ceiling(
        args.client, WorkerSettings(), value_bytes=args.value_bytes, name=args.name, stop=stop
    )
    print(f"STOPPED committed={n}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
