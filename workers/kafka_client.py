"""The Kafka client seam of the decide loop: what it needs of a consumer and a transactional
producer, as typed Protocols.

The production clients (kafka-python's ``KafkaConsumer``/``KafkaProducer``, built in
:mod:`workers.decide_loop`) and the in-package doubles (:mod:`workers.testing`) both satisfy
them; a second backend (confluent-kafka) plugs in here by providing the same methods.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

__all__ = ["Consumer", "Record", "SendResult", "TransactionalProducer"]


class Record(Protocol):
    """A consumed record."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int  # ms since the epoch


class SendResult(Protocol):
    """The outcome of one ``send``, known after ``flush``."""

    def succeeded(self) -> bool:
        """Whether the broker acknowledged the record."""
        ...

    @property
    def exception(self) -> BaseException | None:
        """Why it failed (None when it did not)."""
        ...


class Consumer(Protocol):
    """A group member reading committed records (``read_committed``)."""

    def poll(self, timeout_ms: int = 0, max_records: int = 500) -> Mapping[Any, Sequence[Any]]:
        """Records per topic-partition, waiting at most ``timeout_ms`` for the first."""
        ...

    def assignment(self) -> set[Any]:
        """The topic-partitions this member owns now."""
        ...

    def position(self, tp: Any, timeout_ms: int | None = None) -> int | None:
        """The next offset this member will read from ``tp``."""
        ...

    def highwater(self, tp: Any) -> int | None:
        """The log end of ``tp`` as last fetched (None before the first fetch)."""
        ...

    def seek(self, tp: Any, offset: int) -> None:
        """Read ``tp`` from ``offset`` on."""
        ...

    def group_metadata(self) -> Any:
        """The member's group metadata, for ``send_offsets_to_transaction`` (KIP-447)."""
        ...

    def close(self) -> None:
        """Leave the group (its partitions move at once) and close."""
        ...


class TransactionalProducer(Protocol):
    """A producer with a transactional id: records + consumed offsets commit atomically."""

    def begin_transaction(self) -> None:
        """Open a transaction."""
        ...

    def send(self, topic: str, key: bytes | None = None, value: bytes = b"") -> SendResult:
        """Queue one record in the open transaction."""
        ...

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every queued record is acknowledged or failed."""
        ...

    def send_offsets_to_transaction(self, offsets: dict[Any, Any], group: Any) -> None:
        """Add the consumed offsets, with the consumer's group metadata, to the transaction."""
        ...

    def commit_transaction(self) -> None:
        """Commit records and offsets together."""
        ...

    def abort_transaction(self) -> None:
        """Discard the open transaction's records and offsets."""
        ...

    def close(self, timeout: float | None = None) -> None:
        """Flush and close."""
        ...
