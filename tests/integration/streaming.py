"""Helpers for streaming tests: per-test topics, producing, reading committed output."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from kafka import KafkaConsumer, KafkaProducer

from workers.decide_loop import DecisionLoop
from workers.idempotency import Idempotency
from workers.replay import read_topic
from workers.settings import Topics, WorkerSettings
from workers.testing import valid_event


class SteadyProducer:
    """Valid events at about ``rate``/s on a thread, from start until :meth:`stop`."""

    def __init__(self, bootstrap: str, topic: str, rate: int = 300) -> None:
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(bootstrap, topic, rate))
        self._thread.start()

    def _run(self, bootstrap: str, topic: str, rate: int) -> None:
        with KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5) as producer:
            i = 0
            while not self._stop.is_set():
                for _ in range(max(rate // 10, 1)):
                    value = json.dumps(valid_event(i)).encode()
                    producer.send(topic, key=f"app-{i}".encode(), value=value)
                    i += 1
                self.sent = i
                time.sleep(0.1)

    def stop(self) -> int:
        """Stop producing (idempotent); returns how many events were sent."""
        self._stop.set()
        self._thread.join()
        return self.sent


def make_topics(make_topic: Callable[..., str], partitions: int = 4) -> Topics:
    """A fresh set of the pipeline's topics for one test."""
    return Topics(
        events=make_topic("events", partitions),
        decisions=make_topic("decisions", partitions),
        shadow=make_topic("shadow", partitions),
        dlq=make_topic("dlq", 1),
        outcomes=make_topic("outcomes", partitions),
        duplicates=make_topic("duplicates", partitions),
    )


def loop_settings(topics: Topics, group_id: str, **overrides: Any) -> WorkerSettings:
    """Settings of a test decision loop: small batches, no event-id claims, the group's name
    as transactional id prefix (``overrides`` win)."""
    base: dict[str, Any] = dict(
        topics=topics,
        group_id=group_id,
        transactional_id_prefix=group_id,
        max_batch_size=100,
        max_wait_ms=20,
        dedupe_window_s=0,
    )
    return WorkerSettings(**{**base, **overrides})


def read_committed(bootstrap: str, topic: str, idle_ms: int = 3000) -> list[dict[str, Any]]:
    """Every committed record of ``topic`` (read_committed), parsed as JSON."""
    return [json.loads(r.value) for r in read_topic(bootstrap, topic, idle_ms) if r.value]


def accounted(bootstrap: str, topics: Topics) -> tuple[Counter[str], list[dict[str, Any]]]:
    """Counts of event ids over committed decisions, and the dead letters."""
    decisions = read_committed(bootstrap, topics.decisions)
    dlq = read_committed(bootstrap, topics.dlq)
    return Counter(d["event_id"] for d in decisions), dlq


def assert_decided_once(bootstrap: str, topics: Topics, sent: int, timeout_s: float = 60) -> None:
    """Wait until ``sent`` valid events are accounted for; each must be decided exactly once."""
    reader = CommittedReader(bootstrap, topics.decisions, topics.dlq)
    try:
        ids, dlq = reader.wait_accounted(topics, lambda ids, dlq: len(ids) + len(dlq) >= sent)
    finally:
        reader.close()
    assert len(ids) == sent, f"{len(ids)} of {sent} events decided"
    assert max(ids.values(), default=1) == 1, "an event was decided twice"
    assert not dlq, f"valid events dead-lettered: {dlq[:3]}"


class CommittedReader:
    """Keeps a read_committed consumer open and accumulates records as they commit."""

    def __init__(self, bootstrap: str, *topics: str) -> None:
        self.records: dict[str, list[dict[str, Any]]] = {t: [] for t in topics}
        self._consumer = KafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            isolation_level="read_committed",
        )

    def poll(self, timeout_ms: int = 500) -> int:
        """Read what is committed now; returns how many records were new."""
        new = 0
        for tp, msgs in self._consumer.poll(timeout_ms=timeout_ms, max_records=50_000).items():
            self.records[tp.topic].extend(
                {**json.loads(m.value), "_partition": tp.partition, "_offset": m.offset}
                for m in msgs
            )
            new += len(msgs)
        return new

    def count(self, topic: str) -> int:
        """Records seen so far on ``topic`` (after a poll)."""
        return len(self.records[topic])

    def drain(self, idle_ms: int = 3000) -> int:
        """Read on until nothing new commits for ``idle_ms``, as :func:`read_committed` reads
        a topic from the start; returns how many records were new."""
        new = 0
        last = time.monotonic()
        while (left_ms := idle_ms - (time.monotonic() - last) * 1000.0) > 0:
            if got := self.poll(min(int(left_ms) + 1, 200)):
                new += got
                last = time.monotonic()
        return new

    def accounted(self, topics: Topics) -> tuple[Counter[str], list[dict[str, Any]]]:
        """What :func:`accounted` returns, over the records read so far."""
        decisions = self.records[topics.decisions]
        return Counter(d["event_id"] for d in decisions), list(self.records[topics.dlq])

    def wait_accounted(
        self,
        topics: Topics,
        done: Callable[[Counter[str], list[dict[str, Any]]], bool],
        timeout_s: float = 60,
        idle_ms: int = 3000,
    ) -> tuple[Counter[str], list[dict[str, Any]]]:
        """Read as records commit until ``done(ids, dead letters)`` or ``timeout_s``; then read
        on until nothing new commits for ``idle_ms`` (a late duplicate or dead letter shows),
        and return :meth:`accounted`."""
        deadline = time.monotonic() + timeout_s
        self.poll()
        while not done(*self.accounted(topics)) and time.monotonic() < deadline:
            self.poll()
        self.drain(idle_ms)
        return self.accounted(topics)

    def close(self) -> None:
        self._consumer.close()


@contextmanager
def deciding(
    settings: WorkerSettings, name: str, idempotency: Idempotency | None = None
) -> Iterator[tuple[DecisionLoop, threading.Thread]]:
    """A decision loop with the in-package model double, on a thread, stopped on exit."""
    from workers.testing import fake_engine

    loop = DecisionLoop(settings, fake_engine(idempotency), worker_name=name)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        yield loop, thread
    finally:
        loop.stop()
        thread.join(30)
