"""In-package test doubles: a deterministic model standing in for a registry model."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from models.spec import FeatureSpec, load_spec
from workers.kafka_client import Consumer, TransactionalProducer

__all__ = ["FakeModel", "valid_event"]


@dataclass
class FakeModel:
    """Risk rises with Amount: score = Amount / (Amount + 2000). Can fail or stall on demand."""

    version: int = 1
    name: str = "credit_data"
    spec: FeatureSpec = None  # type: ignore[assignment]
    fail: bool = False
    delay_s: float = 0.0

    def __post_init__(self) -> None:
        if self.spec is None:
            self.spec = load_spec("credit_data")

    def score(self, df: pd.DataFrame) -> npt.NDArray[np.float64]:
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail:
            raise RuntimeError("model exploded")
        amount = pd.to_numeric(df["Amount"], errors="coerce").fillna(0).to_numpy(np.float64)
        return amount / (amount + 2000.0)

    def score_explain(
        self, df: pd.DataFrame
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        scores = self.score(df)
        out = np.zeros((len(df), len(self.spec.feature_names)))
        out[:, self.spec.feature_names.index("Amount")] = scores
        return scores, out


def valid_event(i: int, amount: float = 1000.0) -> dict[str, object]:
    """A valid credit event payload number ``i``."""
    from workers.producer import event_payload

    return event_payload(
        f"app-{i:06d}",
        {"Amount": amount, "Home": "rent", "Seniority": 3, "Income": 150.0, "Records": "no"},
        event_id=f"evt-{i}",
    )


@dataclass(frozen=True)
class _Msg:
    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    timestamp: int  # ms since the epoch, as Kafka's CreateTime


class FakeLogConsumer:
    """A consumer double over in-memory partitions: poll reads from the fetch position.

    ``rebalance_on_poll`` maps a poll number to (revoked, assigned) partition lists; the
    listener is called like the real client does, and positions are kept, as kafka-python
    does for partitions that are handed straight back. ``rebalance_after_poll`` starts the
    rebalance after that poll has returned its records. A started rebalance completes in the
    next poll with a timeout (``rejoin_needs_time``) or in any poll.
    """

    def __init__(
        self, logs: dict[int, list[bytes]], topic: str = "events", produced_ago_ms: int = 0
    ) -> None:
        from kafka import TopicPartition

        self.produced_ago_ms = produced_ago_ms  # record timestamps: this long before the poll
        self.topic = topic
        self.logs = logs
        self.tps = {p: TopicPartition(topic, p) for p in logs}
        self.positions = dict.fromkeys(logs, 0)
        self.assigned = set(logs)
        self.listener: Any = None
        self.polls = 0
        self.rebalance_on_poll: dict[int, tuple[list[int], list[int]]] = {}
        self.rebalance_after_poll: dict[int, tuple[list[int], list[int]]] = {}
        self.first_poll_max: int | None = None  # cap on the first poll's records
        # None: re-assigned partitions keep their position (kafka-python 3); else a function
        # giving the committed offset the position is reset to (other clients, lost members)
        self.reset_to: Any = None
        # True: a rejoin completes only in a poll with a timeout (a client that needs poll time)
        self.rejoin_needs_time = True
        self.rejoin_never_completes = False
        self._joining: list[int] | None = None

    def assignment(self) -> set[Any]:
        return {self.tps[p] for p in self.assigned}

    def seek(self, tp: Any, offset: int) -> None:
        self.positions[tp.partition] = offset

    def group_metadata(self) -> str:
        return "group"

    def poll(self, timeout_ms: int = 0, max_records: int = 500) -> dict[Any, list[Any]]:
        self.polls += 1
        if self.polls == 1 and self.first_poll_max is not None:
            max_records = min(max_records, self.first_poll_max)
        if self.polls in self.rebalance_on_poll:
            self._revoke(*self.rebalance_on_poll[self.polls])
        if self._joining is not None:
            if self.rejoin_never_completes or (timeout_ms == 0 and self.rejoin_needs_time):
                return {}  # the rejoin needs poll time, or is stuck
            assigned, self._joining = self._joining, None
            self.assigned = set(assigned)
            if self.reset_to is not None:
                for p in assigned:
                    self.positions[p] = self.reset_to(p)
            self.listener.on_partitions_assigned([self.tps[p] for p in assigned])
        out: dict[Any, list[Any]] = {}
        for p in sorted(self.assigned):
            start = self.positions[p]
            chunk = self.logs[p][start : start + max_records]
            if chunk:
                born = int(time.time() * 1000) - self.produced_ago_ms
                out[self.tps[p]] = [
                    _Msg(self.topic, p, start + i, f"k{p}".encode(), v, born)
                    for i, v in enumerate(chunk)
                ]
                self.positions[p] = start + len(chunk)
                max_records -= len(chunk)
        if self.polls in self.rebalance_after_poll:  # records fetched, then a rebalance starts
            self._revoke(*self.rebalance_after_poll[self.polls])
        return out

    def _revoke(self, revoked: list[int], assigned: list[int]) -> None:
        self.listener.on_partitions_revoked([self.tps[p] for p in revoked])
        self.assigned = set()
        self._joining = assigned

    def position(self, tp: Any, timeout_ms: int | None = None) -> int:
        return self.positions[tp.partition]

    def highwater(self, tp: Any) -> int:
        return len(self.logs[tp.partition])

    def close(self) -> None:
        return None


@dataclass
class _Sent:
    error: Exception | None = None

    def succeeded(self) -> bool:
        return self.error is None

    @property
    def exception(self) -> Exception | None:
        return self.error


class FakeTxnProducer:
    """A transactional producer double: keeps what committed transactions wrote.

    ``fail_sends`` makes that many next records fail (as after a broker crash) without failing
    the transaction itself, the way kafka-python 3 can after an epoch bump.
    """

    def __init__(self) -> None:
        self.fail_sends = 0
        self.aborts = 0
        self.committed: list[tuple[str, bytes]] = []
        self.offsets: dict[Any, int] = {}
        self._open: list[tuple[str, bytes]] | None = None
        self._offsets: dict[Any, int] = {}

    def begin_transaction(self) -> None:
        self._open, self._offsets = [], {}

    def send(self, topic: str, key: bytes | None = None, value: bytes = b"") -> _Sent:
        assert self._open is not None
        if self.fail_sends > 0:
            self.fail_sends -= 1
            return _Sent(RuntimeError("InvalidProducerEpochError"))
        self._open.append((topic, value))
        return _Sent()

    def flush(self, timeout: float | None = None) -> None:
        return None

    def send_offsets_to_transaction(self, offsets: dict[Any, Any], group: Any) -> None:
        self._offsets = {tp: om.offset for tp, om in offsets.items()}

    def commit_transaction(self) -> None:
        assert self._open is not None
        self.committed += self._open
        self.offsets.update(self._offsets)
        self._open = None

    def abort_transaction(self) -> None:
        self._open = None
        self.aborts += 1

    def close(self, timeout: float | None = None) -> None:
        return None


def _conforms(consumer: FakeLogConsumer, producer: FakeTxnProducer) -> None:
    """mypy checks here that the doubles satisfy the decide loop's client seam."""
    seam: tuple[Consumer, TransactionalProducer] = (consumer, producer)
    del seam
