"""The demo's reader of committed decisions and dead letters: this run's records only.

It assigns every partition of the decisions and dead-letter topics and starts at the end
offsets taken when the run began, so it never reads an earlier run's records (the topics keep
them all); decisions must also carry one of this run's event ids. It reads on a thread, as
``read_committed``, and stamps each record with the wall-clock time it was read, which is what
the demo's latency is measured to.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["CommittedReader", "Read", "end_offsets"]


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The end (high-watermark) offset of every partition of ``topic``."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        return {tp.partition: off for tp, off in consumer.end_offsets(parts).items()}
    finally:
        consumer.close()


@dataclass(frozen=True)
class Read:
    """A record and the wall-clock time (``time.time()``) the reader got it."""

    at: float
    record: dict[str, Any]


class CommittedReader:
    """Reads decisions (event id starting with ``prefix``) and dead letters from ``start``."""

    def __init__(
        self,
        bootstrap: str,
        decisions_topic: str,
        dlq_topic: str,
        start: Mapping[str, Mapping[int, int]],
        prefix: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self.decisions_topic = decisions_topic
        self.dlq_topic = dlq_topic
        self.prefix = prefix
        self._clock = clock
        self._lock = threading.Lock()
        self._decisions: dict[str, Read] = {}
        self._dlq: list[Read] = []
        self.duplicates = 0
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            fetch_max_wait_ms=20,  # the reader's own wait is charged to every latency
        )
        tps = [
            TopicPartition(topic, part)
            for topic in (decisions_topic, dlq_topic)
            for part in start.get(topic, {})
        ]
        self._consumer.assign(tps)
        for tp in tps:
            self._consumer.seek(tp, start[tp.topic][tp.partition])
        self._thread = threading.Thread(target=self._run, name="demo-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                polled = self._consumer.poll(timeout_ms=50, max_records=10_000)
                now = self._clock()
                for tp, msgs in polled.items():
                    for m in msgs:
                        self._note(tp.topic, m.value, now)
        except BaseException as exc:  # surfaced by wait_until
            self._error = exc
        finally:
            self._consumer.close()

    def _note(self, topic: str, value: bytes | None, now: float) -> None:
        try:
            rec = json.loads(value or b"")
        except ValueError:
            return
        if not isinstance(rec, dict):
            return
        with self._lock:
            if topic == self.dlq_topic:
                self._dlq.append(Read(now, rec))
                return
            event_id = str(rec.get("event_id", ""))
            if not event_id.startswith(self.prefix):
                return
            if event_id in self._decisions:
                self.duplicates += 1
            else:
                self._decisions[event_id] = Read(now, rec)

    def decisions(self, prefix: str) -> list[Read]:
        """The decisions read so far whose event id starts with ``prefix``."""
        with self._lock:  # copy only: the reader thread waits while this holds the lock
            items = list(self._decisions.items())
        return [r for eid, r in items if eid.startswith(prefix)]

    def dead_letters(self) -> list[Read]:
        """Every dead letter read so far (pick a phase's with ``run_dead_letters``)."""
        with self._lock:
            return list(self._dlq)

    def wait_until(
        self, done: Callable[[], bool], timeout: float, alive: Callable[[], None] | None = None
    ) -> None:
        """Wait until ``done()``; raise TimeoutError after ``timeout`` seconds, or what
        ``alive()`` raises (a worker died), or the reader's own error."""
        deadline = time.monotonic() + timeout
        while not done():
            if self._error is not None:
                raise RuntimeError(f"the demo's reader failed: {self._error!r}")
            if alive is not None:
                alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"not done in {timeout:.0f}s")
            time.sleep(0.05)

    def close(self) -> None:
        """Stop the thread (it closes the consumer)."""
        self._stop.set()
        self._thread.join(10)
