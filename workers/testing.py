"""In-package test doubles: a deterministic model standing in for a registry model."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from decisioning.contracts import DeadLetter, Decision
from models.spec import FeatureSpec, load_spec
from workers.kafka_client import (
    TP,
    ClientError,
    Consumer,
    Offsets,
    RawRecord,
    RebalanceListener,
    TransactionalProducer,
)

__all__ = ["FakeLogConsumer", "FakeModel", "FakeTxnProducer", "valid_event"]


@dataclass
class FakeModel:
    """Risk rises with Amount: score = Amount / (Amount + 2000). Can fail or stall on demand,
    when scoring (``fail``, ``delay_s``) or when explaining (``explain_fail``,
    ``explain_delay_s``)."""

    version: int = 1
    name: str = "credit_data"
    spec: FeatureSpec = None  # type: ignore[assignment]
    fail: bool = False
    delay_s: float = 0.0
    explain_fail: bool = False
    explain_delay_s: float = 0.0

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

    def score_with_explainer(
        self, features: Mapping[str, Sequence[Any]], n_rows: int, method: str | None = None
    ) -> FakeScored:
        """Scores of a column-wise batch; the Amount column explains all the risk."""
        amounts = features.get("Amount", [None] * n_rows)
        scores = self.score(pd.DataFrame({"Amount": pd.Series(amounts, dtype=object)}))
        return FakeScored(
            scores,
            len(self.spec.feature_names),
            self.spec.feature_names,
            fail=self.explain_fail,
            delay_s=self.explain_delay_s,
        )


@dataclass
class FakeScored:
    """:class:`FakeModel`'s scored batch: contributions all on Amount (method ``fake``)."""

    scores: npt.NDArray[np.float64]
    n_features: int
    feature_names: list[str]
    method_used: str | None = None
    fail: bool = False
    delay_s: float = 0.0

    def explain(self, rows: npt.NDArray[np.intp]) -> npt.NDArray[np.float64]:
        """Contributions of ``rows``."""
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail:
            raise RuntimeError("explainer exploded")
        self.method_used = "fake"
        out = np.zeros((len(rows), self.n_features))
        out[:, self.feature_names.index("Amount")] = self.scores[np.asarray(rows, dtype=np.intp)]
        return out


def valid_event(i: int, amount: float = 1000.0) -> dict[str, object]:
    """A valid credit event payload number ``i``."""
    from workers.producer import event_payload

    return event_payload(
        f"app-{i:06d}",
        {"Amount": amount, "Home": "rent", "Seniority": 3, "Income": 150.0, "Records": "no"},
        event_id=f"evt-{i}",
    )


class FakeLogConsumer:
    """A consumer double over in-memory partitions: poll reads from the fetch position.

    ``rebalance_on_poll`` maps a poll number to (revoked, assigned) partition lists; the
    listener is called like the real client does, and positions are kept, as kafka-python
    does for partitions that are handed straight back. ``rebalance_after_poll`` starts the
    rebalance after that poll has returned its records. A started rebalance completes in the
    next poll with a timeout (``rejoin_needs_time``) or in any poll. The records at the
    ``(partition, offset)`` positions in ``undecodable`` come back as the backends hand over
    a record their client could not decode: ``error`` set, no key, no value.

    ``cooperative`` rebalances incrementally (KIP-429), as confluent-kafka does with the
    cooperative-sticky assignor: only the revoked partitions leave, the others keep their
    positions and stay readable, and a later assignment adds partitions (from their committed
    offsets, ``reset_to``) without taking any.
    """

    def __init__(
        self, logs: dict[int, list[bytes]], topic: str = "events", produced_ago_ms: int = 0
    ) -> None:
        self.produced_ago_ms = produced_ago_ms  # record timestamps: this long before the poll
        self.topic = topic
        self.logs = logs
        self.positions = dict.fromkeys(logs, 0)
        self.assigned = set(logs)
        self.listener: RebalanceListener | None = None
        self.polls = 0
        self.rebalance_on_poll: dict[int, tuple[list[int], list[int]]] = {}
        self.rebalance_after_poll: dict[int, tuple[list[int], list[int]]] = {}
        self.first_poll_max: int | None = None  # cap on the first poll's records
        # None: re-assigned partitions keep their position (kafka-python 3); else a function
        # giving the committed offset the position is reset to (confluent-kafka, lost members)
        self.reset_to: Callable[[int], int] | None = None
        # True: a rejoin completes only in a poll with a timeout (a client that needs poll time)
        self.rejoin_needs_time = True
        self.rejoin_never_completes = False
        self.undecodable: set[tuple[int, int]] = set()
        self.cooperative = False
        self._joining: list[int] | None = None

    def _tps(self, partitions: list[int]) -> list[TP]:
        return [(self.topic, p) for p in partitions]

    def assignment(self) -> set[TP]:
        return set(self._tps(sorted(self.assigned)))

    def seek(self, tp: TP, offset: int) -> None:
        self.positions[tp[1]] = offset

    def group_metadata(self) -> str:
        return "group"

    def poll(self, timeout_ms: int, max_records: int) -> list[RawRecord]:
        assert self.listener is not None
        self.polls += 1
        if self.polls == 1 and self.first_poll_max is not None:
            max_records = min(max_records, self.first_poll_max)
        if self.polls in self.rebalance_on_poll:
            self._revoke(*self.rebalance_on_poll[self.polls])
        if self._joining is not None:
            if self.rejoin_never_completes or (timeout_ms == 0 and self.rejoin_needs_time):
                return []  # the rejoin needs poll time, or is stuck
            assigned, self._joining = self._joining, None
            self.assigned = self.assigned | set(assigned) if self.cooperative else set(assigned)
            if self.reset_to is not None:
                for p in assigned:
                    self.positions[p] = self.reset_to(p)
            self.listener.on_assigned(self._tps(assigned))
        out: list[RawRecord] = []
        for p in sorted(self.assigned):
            start = self.positions[p]
            chunk = self.logs[p][start : start + max_records]
            if chunk:
                born = int(time.time() * 1000) - self.produced_ago_ms
                out += [self._record(p, start + i, v, born) for i, v in enumerate(chunk)]
                self.positions[p] = start + len(chunk)
                max_records -= len(chunk)
        if self.polls in self.rebalance_after_poll:  # records fetched, then a rebalance starts
            self._revoke(*self.rebalance_after_poll[self.polls])
        return out

    def _record(self, partition: int, offset: int, value: bytes, born: int) -> RawRecord:
        if (partition, offset) in self.undecodable:
            error = "UnsupportedCodecError: Libraries for snappy compression codec not found"
            return RawRecord(self.topic, partition, offset, None, None, 0, error=error)
        return RawRecord(self.topic, partition, offset, f"k{partition}".encode(), value, born)

    def _revoke(self, revoked: list[int], assigned: list[int]) -> None:
        assert self.listener is not None
        self.listener.on_revoked(self._tps(revoked))
        if self.cooperative:
            self.assigned -= set(revoked)
            added = [p for p in assigned if p not in self.assigned]
            self._joining = added or None
            return
        self.assigned = set()
        self._joining = assigned

    def position(self, tp: TP) -> int:
        return self.positions[tp[1]]

    def highwater(self, tp: TP) -> int:
        return len(self.logs[tp[1]])

    def commit(self, offsets: Offsets) -> None:
        return None

    def close(self) -> None:
        return None


class FakeTxnProducer:
    """A transactional producer double: keeps what committed transactions wrote.

    ``fail_sends`` makes that many next records fail (as after a broker crash); the failure
    surfaces in :meth:`flush`, as with the real backends.
    """

    def __init__(self) -> None:
        self.fail_sends = 0
        self.aborts = 0
        self.commits = 0
        self.committed: list[tuple[str, bytes]] = []
        self.offsets: dict[TP, int] = {}
        self._open: list[tuple[str, bytes]] | None = None
        self._offsets: dict[TP, int] = {}
        self._failed = 0

    def begin_transaction(self) -> None:
        assert self._open is None, "a transaction is already open"
        self._open, self._offsets, self._failed = [], {}, 0

    def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        assert self._open is not None
        if self.fail_sends > 0:
            self.fail_sends -= 1
            self._failed += 1
            return
        self._open.append((topic, value))

    def flush(self) -> None:
        if self._failed:
            raise ClientError(f"{self._failed} records not written: InvalidProducerEpochError")

    def send_offsets_to_transaction(self, offsets: Offsets, group_metadata: Any) -> None:
        self._offsets = dict(offsets)

    def commit_transaction(self) -> None:
        assert self._open is not None
        self.committed += self._open
        self.offsets.update(self._offsets)
        self._open = None
        self.commits += 1

    def abort_transaction(self) -> None:
        self._open = None
        self.aborts += 1

    def close(self) -> None:
        return None


def _conforms(consumer: FakeLogConsumer, producer: FakeTxnProducer) -> None:
    """mypy checks here that the doubles satisfy the decide loop's client seam."""
    seam: tuple[Consumer, TransactionalProducer] = (consumer, producer)
    del seam


def sample_decision(i: int, at: datetime | None = None) -> Decision:
    """A valid decision record for event ``evt-<i>`` (sink and store tests)."""
    now = at or datetime.now(UTC)
    return Decision(
        event_id=f"evt-{i}",
        entity_id=f"app-{i:06d}",
        decision="approve",
        score=0.2,
        threshold=0.5,
        model_name="credit",
        model_version=1,
        policy_name="credit_v1",
        policy_version="1",
        arm="champion",
        shadow=False,
        feature_hash="a" * 64,
        event_time=now,
        decided_at=now,
        latency_ms=1.0,
    )


def sample_dead_letter(
    offset: int, message: str = "boom", at: datetime | None = None
) -> DeadLetter:
    """A dead letter of an invalid-JSON record at ``events[0]@offset`` (sink and store tests)."""
    return DeadLetter(
        reason="invalid_json",
        error_class="InvalidJsonError",
        error_message=message,
        stage="decode",
        source_topic="events",
        source_partition=0,
        source_offset=offset,
        raw="e30=",
        raw_size=2,
        failed_at=at or datetime.now(UTC),
    )


def fake_engine(idempotency: Any = None) -> Any:
    """A :class:`~workers.engine.DecisionEngine` deciding with :class:`FakeModel` and policy
    ``credit_v1`` (``idempotency``: its event-id claims, if any)."""
    from decisioning.policy import load_policy
    from workers.engine import DecisionEngine

    model = FakeModel()
    return DecisionEngine(
        model,  # type: ignore[arg-type]
        load_policy("credit_v1"),
        model.spec,
        idempotency=idempotency,
    )


def loop_over(
    consumer: FakeLogConsumer,
    producer: FakeTxnProducer,
    *,
    idempotency: Any = None,
    **settings: Any,
) -> Any:
    """A :class:`~workers.decide_loop.DecisionLoop` over the client doubles with
    :func:`fake_engine`, the consumer's partitions assigned. ``settings`` override
    :class:`~workers.settings.WorkerSettings` fields."""
    from workers.decide_loop import DecisionLoop
    from workers.settings import WorkerSettings

    worker = WorkerSettings(_env_file=None, **settings)  # type: ignore[call-arg]
    loop = DecisionLoop(worker, fake_engine(idempotency), worker_name="unit")
    consumer.listener = loop.tracker
    loop.tracker.on_assigned(list(consumer.assignment()))
    loop.consumer, loop.producer = consumer, producer
    return loop
