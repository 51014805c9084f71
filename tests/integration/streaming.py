"""Helpers for streaming tests: per-test topics, producing, reading committed output."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from kafka import KafkaConsumer

from workers.decide_loop import DecisionLoop
from workers.idempotency import Idempotency
from workers.replay import read_topic
from workers.settings import Topics, WorkerSettings


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


def read_committed(bootstrap: str, topic: str, idle_ms: int = 3000) -> list[dict[str, Any]]:
    """Every committed record of ``topic`` (read_committed), parsed as JSON."""
    return [json.loads(r.value) for r in read_topic(bootstrap, topic, idle_ms) if r.value]


def accounted(bootstrap: str, topics: Topics) -> tuple[Counter[str], list[dict[str, Any]]]:
    """Counts of event ids over committed decisions, and the dead letters."""
    decisions = read_committed(bootstrap, topics.decisions)
    dlq = read_committed(bootstrap, topics.dlq)
    return Counter(d["event_id"] for d in decisions), dlq


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

    def close(self) -> None:
        self._consumer.close()


@contextmanager
def deciding(
    settings: WorkerSettings, name: str, idempotency: Idempotency | None = None
) -> Iterator[tuple[DecisionLoop, threading.Thread]]:
    """A decision loop with the in-package model double, on a thread, stopped on exit."""
    from decisioning.policy import load_policy
    from workers.engine import DecisionEngine
    from workers.testing import FakeModel

    model = FakeModel()
    engine = DecisionEngine(
        model,  # type: ignore[arg-type]
        load_policy("credit_v1"),
        model.spec,
        idempotency=idempotency,
    )
    loop = DecisionLoop(settings, engine, worker_name=name)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        yield loop, thread
    finally:
        loop.stop()
        thread.join(30)
