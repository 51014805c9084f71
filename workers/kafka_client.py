"""The Kafka client seam: what the decide loop needs of a consumer and a transactional producer.

Two backends satisfy these Protocols, chosen by ``DECISIONFLOW_KAFKA_CLIENT``:

* ``confluent`` (default): confluent-kafka, librdkafka underneath. Its consume, produce and
  transaction round trips run in C, about a tenth of kafka-python's CPU per event
  (docs/benchmarks.md), and it decodes every compression codec itself.
* ``kafka-python``: the pure-Python client, kept as a supported backend.

The in-package doubles (:mod:`workers.testing`) satisfy the same Protocols. Partitions are
``(topic, partition)`` tuples and offsets are plain ints in every backend; every client failure
surfaces as :class:`ClientError`.

A record the client cannot decode (a codec it lacks, a corrupt batch) is a data error, not a
client failure: ``poll`` hands it over as a :class:`RawRecord` with ``error`` set, once the
backend has given up on it, and the partition moves past it. Consumers dead-letter or
quarantine it like any bad record; they never rebuild their clients for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from workers.settings import KafkaSettings

__all__ = [
    "CLIENTS",
    "TP",
    "ClientError",
    "ClientName",
    "Consumer",
    "Membership",
    "Offsets",
    "RawRecord",
    "RebalanceListener",
    "TransactionalProducer",
    "make_consumer",
    "make_producer",
]

ClientName = Literal["confluent", "kafka-python"]
CLIENTS: tuple[ClientName, ...] = ("confluent", "kafka-python")
TP = tuple[str, int]
Offsets = Mapping[TP, int]
"""Next offset to read, per partition."""


class ClientError(Exception):
    """A Kafka client failure: broker gone, fenced, timed out, rebalance under way.

    The loop aborts and rewinds the batch; when that fails too it rebuilds its clients.
    """


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One consumed Kafka record."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int = 0
    """ms since the epoch (the producer's CreateTime); 0 when unknown."""
    error: str | None = None
    """Set when the client could not decode the record (a codec it lacks, a corrupt batch):
    what failed. ``key`` and ``value`` are then None unless the client had them; the position
    (topic, partition, offset) is always the record's own."""


@dataclass(frozen=True, slots=True)
class Membership:
    """How a consumer belongs to its group.

    ``instance_id`` makes it a static member (KIP-345): a member restarted under the same id
    within ``session_timeout_ms`` gets its partitions back without a rebalance, and a dead
    member's partitions move after ``session_timeout_ms`` (seconds, not Kafka's 45 s default).

    ``cooperative`` asks for incremental cooperative rebalancing (KIP-429, the
    ``cooperative-sticky`` assignor) where the backend supports it (confluent): a rebalance
    revokes only the partitions that move, and the member keeps consuming the others. The
    listener is then told about moved partitions only (``on_revoked`` without a following
    ``on_assigned`` when nothing new comes). Every member of a group must agree on it.
    """

    instance_id: str | None = None
    session_timeout_ms: int = 6_000
    heartbeat_interval_ms: int = 1_000
    cooperative: bool = False


class RebalanceListener(Protocol):
    """Told about partitions moving; called on the consumer's calling thread."""

    def on_revoked(self, partitions: list[TP]) -> None:
        """These partitions are no longer ours."""
        ...

    def on_assigned(self, partitions: list[TP]) -> None:
        """These partitions are ours now."""
        ...


class Consumer(Protocol):
    """A group member reading committed records only (``read_committed``, auto commit off)."""

    def poll(self, timeout_ms: int, max_records: int) -> list[RawRecord]:
        """Up to ``max_records`` records, waiting at most ``timeout_ms`` for the first."""
        ...

    def assignment(self) -> set[TP]:
        """The partitions this member owns now."""
        ...

    def position(self, tp: TP) -> int | None:
        """The next offset this member will hand out for ``tp`` (None: not known yet)."""
        ...

    def highwater(self, tp: TP) -> int | None:
        """The log end of ``tp`` as last fetched (None before the first fetch)."""
        ...

    def seek(self, tp: TP, offset: int) -> None:
        """Read ``tp`` from ``offset`` on (records already fetched past it are dropped)."""
        ...

    def group_metadata(self) -> Any:
        """The member's group metadata, for ``send_offsets_to_transaction`` (KIP-447)."""
        ...

    def commit(self, offsets: Offsets) -> None:
        """Commit offsets outside any transaction (at-least-once readers)."""
        ...

    def close(self) -> None:
        """Leave the group (its partitions move at once) and close."""
        ...


class TransactionalProducer(Protocol):
    """A producer with a transactional id: records + consumed offsets commit atomically."""

    def begin_transaction(self) -> None:
        """Open a transaction."""
        ...

    def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Queue one record in the open transaction (failures surface in :meth:`flush`)."""
        ...

    def flush(self) -> None:
        """Wait until every queued record is acknowledged; ClientError if any failed."""
        ...

    def send_offsets_to_transaction(self, offsets: Offsets, group_metadata: Any) -> None:
        """Add the consumed offsets, with the consumer's group metadata, to the transaction."""
        ...

    def commit_transaction(self) -> None:
        """Commit records and offsets together."""
        ...

    def abort_transaction(self) -> None:
        """Discard the open transaction's records and offsets."""
        ...

    def close(self) -> None:
        """Flush and close."""
        ...


def make_consumer(
    client: ClientName,
    kafka: KafkaSettings,
    *,
    group_id: str,
    topics: Sequence[str],
    listener: RebalanceListener | None = None,
    max_poll_records: int = 500,
    max_poll_interval_ms: int = 300_000,
    membership: Membership | None = None,
) -> Consumer:
    """A ``read_committed`` member of ``group_id`` subscribed to ``topics`` (earliest reset).

    Waits until the first topic's metadata is known (ClientError after 30 s): a group leader
    without it assigns nothing until its next metadata refresh.
    """
    args = (kafka, group_id, list(topics), listener, max_poll_records, max_poll_interval_ms)
    member = membership or Membership()
    if client == "confluent":
        from workers.kafka_confluent import ConfluentConsumer

        return ConfluentConsumer(*args, member)
    from workers.kafka_python import KafkaPythonConsumer

    return KafkaPythonConsumer(*args, member)


def make_producer(
    client: ClientName,
    kafka: KafkaSettings,
    *,
    transactional_id: str,
    transaction_timeout_ms: int = 15_000,
) -> TransactionalProducer:
    """A transactional producer, initialised: an earlier instance with the same id is fenced
    and its open transaction aborted."""
    if client == "confluent":
        from workers.kafka_confluent import ConfluentProducer

        return ConfluentProducer(kafka, transactional_id, transaction_timeout_ms)
    from workers.kafka_python import KafkaPythonProducer

    return KafkaPythonProducer(kafka, transactional_id, transaction_timeout_ms)
