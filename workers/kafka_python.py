"""The kafka-python backend of :mod:`workers.kafka_client`.

Selected with ``DECISIONFLOW_KAFKA_CLIENT=kafka-python``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from workers.kafka_client import TP, ClientError, Offsets, RawRecord, RebalanceListener
from workers.settings import KafkaSettings

__all__ = ["KafkaPythonConsumer", "KafkaPythonProducer"]

T = TypeVar("T")


def _call(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except KafkaError as exc:
        raise ClientError(f"{type(exc).__name__}: {exc}") from exc


def _offsets(offsets: Offsets) -> dict[TopicPartition, OffsetAndMetadata]:
    return {TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()}


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """kafka-python calls this on its network thread: it must not block."""

    def __init__(self, listener: RebalanceListener) -> None:
        self._listener = listener

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self._listener.on_revoked([(tp.topic, tp.partition) for tp in revoked])

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self._listener.on_assigned([(tp.topic, tp.partition) for tp in assigned])


class KafkaPythonConsumer:
    """A ``read_committed`` group consumer on kafka-python."""

    def __init__(
        self,
        kafka: KafkaSettings,
        group_id: str,
        topics: list[str],
        listener: RebalanceListener | None,
        max_poll_records: int,
        max_poll_interval_ms: int,
    ) -> None:
        self._c = _call(
            lambda: KafkaConsumer(
                group_id=group_id,
                enable_auto_commit=False,
                isolation_level="read_committed",
                auto_offset_reset="earliest",
                max_poll_interval_ms=max_poll_interval_ms,
                max_poll_records=max_poll_records,
                fetch_max_bytes=16 * 1024 * 1024,
                metadata_max_age_ms=30_000,  # notice new partitions within 30 s
                **kafka.client_options(),
            )
        )
        deadline = time.monotonic() + 30
        while not self._c.partitions_for_topic(topics[0]):
            if time.monotonic() > deadline:
                self._c.close()
                raise ClientError(f"topic {topics[0]!r} has no partitions (does it exist?)")
            time.sleep(0.5)
        if listener is None:
            self._c.subscribe(topics)
        else:
            self._c.subscribe(topics, listener=_Listener(listener))

    def poll(self, timeout_ms: int, max_records: int) -> list[RawRecord]:
        polled = _call(lambda: self._c.poll(timeout_ms=timeout_ms, max_records=max_records))
        return [
            RawRecord(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp)
            for msgs in polled.values()
            for m in msgs
        ]

    def assignment(self) -> set[TP]:
        return {(tp.topic, tp.partition) for tp in self._c.assignment()}

    def position(self, tp: TP) -> int | None:
        position: int | None = _call(lambda: self._c.position(TopicPartition(*tp), timeout_ms=5000))
        return position

    def highwater(self, tp: TP) -> int | None:
        high: int | None = self._c.highwater(TopicPartition(*tp))
        return high

    def seek(self, tp: TP, offset: int) -> None:
        _call(lambda: self._c.seek(TopicPartition(*tp), offset))

    def group_metadata(self) -> Any:
        return self._c.group_metadata()

    def commit(self, offsets: Offsets) -> None:
        _call(lambda: self._c.commit(_offsets(offsets)))

    def close(self) -> None:
        self._c.close()


class KafkaPythonProducer:
    """A transactional producer on kafka-python; checks every record before the offsets go in."""

    def __init__(self, kafka: KafkaSettings, transactional_id: str, timeout_ms: int) -> None:
        self._p = _call(
            lambda: KafkaProducer(
                transactional_id=transactional_id,
                transaction_timeout_ms=timeout_ms,
                linger_ms=5,
                batch_size=256 * 1024,
                compression_type=None,
                max_request_size=4 * 1024 * 1024,
                **kafka.client_options(),
            )
        )
        _call(self._p.init_transactions)
        self._futures: list[Any] = []

    def begin_transaction(self) -> None:
        self._futures = []
        _call(self._p.begin_transaction)

    def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        try:
            self._futures.append(self._p.send(topic, key=key, value=value))
        except KafkaError as exc:
            raise ClientError(f"{type(exc).__name__}: {exc}") from exc

    def flush(self) -> None:
        # After a broker crash kafka-python can bump the producer epoch, fail the records and
        # still commit: every record must be acknowledged before the offsets join.
        _call(self._p.flush)
        failed = [f for f in self._futures if not f.succeeded()]
        sent, self._futures = len(self._futures), []
        if failed:
            first = failed[0].exception
            raise ClientError(f"{len(failed)} of {sent} records not written: {first!r}")

    def send_offsets_to_transaction(self, offsets: Offsets, group_metadata: Any) -> None:
        _call(lambda: self._p.send_offsets_to_transaction(_offsets(offsets), group_metadata))

    def commit_transaction(self) -> None:
        _call(self._p.commit_transaction)

    def abort_transaction(self) -> None:
        self._futures = []
        _call(self._p.abort_transaction)

    def close(self) -> None:
        self._p.close(timeout=5)
