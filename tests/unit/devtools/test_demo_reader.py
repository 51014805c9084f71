"""The demo's committed reader on a scripted consumer: it starts at the run's start offsets,
keeps this run's decisions (one per event id; a second read is counted, not kept) and every
dead letter, each stamped with the time it was read."""

from __future__ import annotations

import json
import threading
from collections import namedtuple
from typing import Any

import kafka
import pytest
from kafka import TopicPartition

from devtools.demo_reader import CommittedReader

Msg = namedtuple("Msg", "value")


class _ScriptedConsumer:
    batches: list[dict[TopicPartition, list[Msg]]] = []
    seen: dict[str, Any] = {}

    def __init__(self, **config: Any) -> None:
        self.seen["config"] = config
        self.seen["seeks"] = {}
        self._lock = threading.Lock()

    def assign(self, tps: list[TopicPartition]) -> None:
        self.seen["assigned"] = sorted(tps)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seen["seeks"][tp] = offset

    def poll(self, timeout_ms: int = 0, max_records: int = 0) -> dict[TopicPartition, list[Msg]]:
        with self._lock:
            return self.batches.pop(0) if self.batches else {}

    def close(self) -> None:
        self.seen["closed"] = True


def _decision(event_id: str) -> Msg:
    return Msg(json.dumps({"event_id": event_id, "decision": "approve"}).encode())


def test_reader_keeps_this_runs_records_from_the_start_offsets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dec, dlq = TopicPartition("decisions", 0), TopicPartition("events.dlq", 0)
    _ScriptedConsumer.batches = [
        {dec: [_decision("run1-s-a"), _decision("old-run-x"), Msg(b"not json")]},
        {dec: [_decision("run1-s-a"), _decision("run1-burst-0")], dlq: [Msg(b'{"reason": "r"}')]},
    ]
    monkeypatch.setattr(kafka, "KafkaConsumer", _ScriptedConsumer)
    ticks = iter(range(100, 1000))
    reader = CommittedReader(
        "broker:9092",
        "decisions",
        "events.dlq",
        {"decisions": {0: 40, 1: 7}, "events.dlq": {0: 3}},
        "run1-",
        clock=lambda: float(next(ticks)),
    )
    try:
        reader.wait_until(lambda: len(reader.dead_letters()) == 1, timeout=10)
    finally:
        reader.close()
    seen = _ScriptedConsumer.seen
    assert seen["config"]["isolation_level"] == "read_committed"
    assert seen["config"]["group_id"] is None  # assigned, not a group member
    assert seen["seeks"] == {
        TopicPartition("decisions", 0): 40,
        TopicPartition("decisions", 1): 7,
        TopicPartition("events.dlq", 0): 3,
    }
    stream = reader.decisions("run1-s-")
    assert [r.record["event_id"] for r in stream] == ["run1-s-a"]
    assert stream[0].at == 100.0  # stamped when first read, not when read again
    assert [r.record["event_id"] for r in reader.decisions("run1-")] == ["run1-s-a", "run1-burst-0"]
    assert reader.duplicates == 1
    assert reader.dead_letters()[0].record == {"reason": "r"}
    assert seen["closed"] is True


def test_wait_until_raises_on_timeout_and_on_a_dead_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    _ScriptedConsumer.batches = []
    monkeypatch.setattr(kafka, "KafkaConsumer", _ScriptedConsumer)
    reader = CommittedReader("b", "d", "q", {"d": {0: 0}, "q": {0: 0}}, "run1-")
    try:
        with pytest.raises(TimeoutError):
            reader.wait_until(lambda: False, timeout=0.2)

        def dead() -> None:
            raise RuntimeError("demo1 exited with 1")

        with pytest.raises(RuntimeError, match="demo1 exited"):
            reader.wait_until(lambda: False, timeout=10, alive=dead)
    finally:
        reader.close()
