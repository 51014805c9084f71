"""The kafka-python backend of :mod:`workers.kafka_client`.

Selected with ``DECISIONFLOW_KAFKA_CLIENT=kafka-python``.

A record kafka-python cannot decode (a compression codec whose library is missing, a batch that
fails its CRC) makes ``KafkaConsumer.poll`` raise, and a second poll without a seek never
returns (kafka-python 3.0.12 keeps the failed batch in hand and loops over it). The
:class:`DecodingPoller` retries such a record a bounded number of times, then hands it over as
an errored :class:`RawRecord` and seeks past it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, TypeVar

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import Fetcher
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from workers.kafka_client import (
    TP,
    ClientError,
    Membership,
    Offsets,
    RawRecord,
    RebalanceListener,
)
from workers.settings import KafkaSettings

__all__ = ["DECODE_TRIES", "DecodingPoller", "KafkaPythonConsumer", "KafkaPythonProducer"]

log = logging.getLogger(__name__)
T = TypeVar("T")
DECODE_TRIES = 3
"""Fetches of a record that fails to decode before it is handed over as undecodable."""
# the generator that decompresses, checks and unpacks a fetched partition's record batches
_UNPACK = Fetcher.PartitionRecords._unpack_records.__code__


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


def _raised_unpacking(exc: BaseException) -> bool:
    """True when ``exc`` came out of kafka-python unpacking fetched records: a data error."""
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code is _UNPACK:
            return True
        tb = tb.tb_next
    return False


def _describe(exc: BaseException) -> str:
    """``Class: message`` (kafka-python's own errors already start with their class name)."""
    text, name = str(exc), type(exc).__name__
    return text if text.startswith(name) else f"{name}: {text}"


class DecodingPoller:
    """``poll`` over a kafka-python consumer that never stalls on a record it cannot decode.

    Such a record is fetched again up to ``tries`` times in all, then returned as a
    :class:`RawRecord` with ``error`` set (no key, no value) while the partition moves on to the
    next offset. The next records of the same compressed batch fail in turn and are handed
    over at once, one by one. Other kafka-python errors raise :class:`ClientError`.
    """

    def __init__(self, consumer: KafkaConsumer, tries: int = DECODE_TRIES) -> None:
        self._c = consumer
        self.tries = tries
        self._failures: dict[TP, tuple[int, int]] = {}  # offset failing, failed fetches
        self._skipped_to: dict[TP, int] = {}  # where the last undecodable record left off

    def poll(self, timeout_ms: int, max_records: int) -> list[RawRecord]:
        """Up to ``max_records`` records, waiting at most ``timeout_ms`` for the first."""
        try:
            polled = self._c.poll(timeout_ms=timeout_ms, max_records=max_records)
        except Exception as exc:
            part = self._failed_part(exc)
            if part is not None:
                return self._undecodable(exc, part)
            if isinstance(exc, KafkaError):
                raise ClientError(f"{type(exc).__name__}: {exc}") from exc
            raise
        return [
            RawRecord(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp)
            for msgs in polled.values()
            for m in msgs
        ]

    def _failed_part(self, exc: BaseException) -> Any:
        """The fetched partition records ``exc`` was raised unpacking (None: not a data error).

        kafka-python keeps them as the fetcher's records in hand, their ``next_fetch_offset``
        the offset that failed (pinned kafka-python 3.0.12 internals).
        """
        if not _raised_unpacking(exc):
            return None
        part = getattr(getattr(self._c, "_fetcher", None), "_next_partition_records", None)
        return part if part else None  # a drained one is falsy

    def _undecodable(self, exc: BaseException, part: Any) -> list[RawRecord]:
        """Fetch the failed record again, or give up on it and move past it."""
        tp: TP = (part.topic_partition.topic, part.topic_partition.partition)
        # records before the fetch offset (of the batch holding it) are unpacked and skipped
        offset: int = max(part.next_fetch_offset, part.fetch_offset)
        error = _describe(exc)
        last, failures = self._failures.get(tp, (offset, 0))
        failures = failures + 1 if last == offset else 1
        rest_of_batch = self._skipped_to.get(tp) == offset
        if failures < self.tries and not rest_of_batch:
            self._failures[tp] = (offset, failures)
            log.warning(
                "cannot decode %s[%d]@%d (try %d of %d): %s",
                *tp,
                offset,
                failures,
                self.tries,
                error,
            )
            part.drain()  # else the next poll loops over the failed batch; now it fetches again
            return []
        self._failures.pop(tp, None)
        if TopicPartition(*tp) not in self._c.assignment():
            part.drain()  # no longer ours: its new owner deals with it
            return []
        _call(lambda: self._c.seek(TopicPartition(*tp), offset + 1))
        self._skipped_to[tp] = offset + 1
        log.error("skipping undecodable record %s[%d]@%d: %s", *tp, offset, error)
        return [RawRecord(tp[0], tp[1], offset, None, None, 0, error=error)]


def _join_whole(consumer: KafkaConsumer, wait_ms: int) -> None:
    """Make every group join of ``consumer`` complete inside the ``poll`` that starts it.

    kafka-python 3.0.12 loses joins when ``poll`` times out while a JoinGroup/SyncGroup is in
    flight, which short poll time-outs make common:

    - a join that completes between two polls is thrown away (the next ``poll`` sees a
      finished task and sends a fresh JoinGroup): one more rebalance round for every member,
      a heartbeat interval each, and it can repeat;
    - a rejoin the group leader starts because metadata changed (the first metadata after
      subscribing always does) does not set ``rejoin_needed``: the next ``poll`` sees nothing
      to rejoin and never completes it; the member keeps its old partitions, sends no
      heartbeats and is expelled a session later, and a member joining meanwhile waits.

    So a join waits up to ``wait_ms`` (a session) whatever the caller's time-out: a member
    has no partitions while it rejoins, so nothing waits on it meanwhile. A join slower
    than that is left in flight, and :func:`_resume_lost_join` sees that it is finished.
    """
    coordinator: Any = consumer._coordinator
    ensure_active_group = coordinator.ensure_active_group

    def patient(timeout_ms: int | None = None) -> bool:
        wait = None if timeout_ms is None else max(timeout_ms, wait_ms)
        joined: bool = ensure_active_group(timeout_ms=wait)
        return joined

    coordinator.ensure_active_group = patient


def _resume_lost_join(consumer: KafkaConsumer) -> None:
    """Mark a join left in flight as needed, so that the next ``poll`` awaits it.

    The check holds the coordinator's lock, under which the I/O thread clears the flag when a
    join completes (read unlocked, a join just finished could look lost).
    """
    coordinator: Any = consumer._coordinator
    with coordinator._lock:
        if coordinator._join_task is not None and not coordinator.need_rejoin():
            coordinator.rejoin_needed = True


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
        membership: Membership,
    ) -> None:
        self._c = _call(
            lambda: KafkaConsumer(
                group_id=group_id,
                group_instance_id=membership.instance_id,
                session_timeout_ms=membership.session_timeout_ms,
                heartbeat_interval_ms=membership.heartbeat_interval_ms,
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
        _join_whole(self._c, membership.session_timeout_ms)
        self._poller = DecodingPoller(self._c)

    def poll(self, timeout_ms: int, max_records: int) -> list[RawRecord]:
        _resume_lost_join(self._c)
        return self._poller.poll(timeout_ms, max_records)

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
