"""The confluent-kafka backend of :mod:`workers.kafka_client` (the default client).

librdkafka runs fetches, produce batching and transaction round trips in C threads; the
Python side only moves whole batches. Rebalance callbacks run inside :meth:`poll`, on the
loop's own thread.

A record librdkafka cannot decode (a codec it was built without, a corrupt batch) arrives as a
per-message error naming topic, partition and offset, and librdkafka fetches the same batch
again and again. :meth:`ConfluentConsumer.poll` hands it over as a :class:`RawRecord` with
``error`` set and seeks past it: decoding the same bytes with the same library again cannot
succeed, so there is nothing to retry.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from workers.kafka_client import (
    TP,
    ClientError,
    Membership,
    Offsets,
    RawRecord,
    RebalanceListener,
)
from workers.settings import KafkaSettings

__all__ = ["COOPERATIVE_ASSIGNOR", "DATA_ERRORS", "ConfluentConsumer", "ConfluentProducer"]

log = logging.getLogger(__name__)
T = TypeVar("T")
_TIMEOUT_S = 30.0
COOPERATIVE_ASSIGNOR = "cooperative-sticky"  # incremental rebalancing (KIP-429)
DATA_ERRORS = frozenset(
    {
        KafkaError._BAD_COMPRESSION,  # decompression failed
        KafkaError._BAD_MSG,  # CRC mismatch, malformed record
        KafkaError._NOT_IMPLEMENTED,  # a codec or message format this librdkafka lacks
        KafkaError.UNSUPPORTED_COMPRESSION_TYPE,
        KafkaError.INVALID_MSG,  # CORRUPT_MESSAGE
        KafkaError.INVALID_RECORD,
    }
)
"""Error codes that, reported for one offset of a partition, mean its record is undecodable."""


def _call(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except KafkaException as exc:
        raise ClientError(str(exc.args[0] if exc.args else exc)) from exc


def _partitions(offsets: Offsets) -> list[TopicPartition]:
    return [TopicPartition(t, p, o) for (t, p), o in offsets.items()]


def _tps(partitions: list[TopicPartition]) -> list[TP]:
    return [(tp.topic, tp.partition) for tp in partitions]


class ConfluentConsumer:
    """A ``read_committed`` group consumer on confluent-kafka."""

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
        del max_poll_records  # each poll asks for its own number
        self._listener = listener
        self._sought: dict[TP, int] = {}  # seek targets no record has been read from yet
        static = {"group.instance.id": membership.instance_id} if membership.instance_id else {}
        if membership.cooperative:
            static["partition.assignment.strategy"] = COOPERATIVE_ASSIGNOR
        self._c = Consumer(
            {
                **static,
                "session.timeout.ms": membership.session_timeout_ms,
                "heartbeat.interval.ms": membership.heartbeat_interval_ms,
                **kafka.confluent_options(),
                "group.id": group_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
                "enable.partition.eof": False,
                "max.poll.interval.ms": max_poll_interval_ms,
                "topic.metadata.refresh.interval.ms": 30_000,  # notice new partitions
            }
        )
        deadline = time.monotonic() + _TIMEOUT_S
        while not self._partition_count(topics[0]):
            if time.monotonic() > deadline:
                self._c.close()
                raise ClientError(f"topic {topics[0]!r} has no partitions (does it exist?)")
            time.sleep(0.5)
        self._c.subscribe(
            topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke
        )

    def _on_assign(self, _c: Consumer, parts: list[TopicPartition]) -> None:
        tps = _tps(parts)
        self._forget(tps)
        if self._listener is not None:
            self._listener.on_assigned(tps)

    def _on_revoke(self, _c: Consumer, parts: list[TopicPartition]) -> None:
        tps = _tps(parts)
        self._forget(tps)
        if self._listener is not None:
            self._listener.on_revoked(tps)

    def _forget(self, tps: list[TP]) -> None:
        """Moved partitions start again from their committed offsets."""
        for tp in tps:
            self._sought.pop(tp, None)

    def _partition_count(self, topic: str) -> int:
        try:
            meta = self._c.list_topics(topic, timeout=5.0).topics.get(topic)
        except KafkaException:
            return 0
        return 0 if meta is None or meta.error is not None else len(meta.partitions)

    def poll(self, timeout_ms: int, max_records: int) -> list[RawRecord]:
        consume = self._c.consume
        msgs: list[Message] = _call(lambda: consume(num_messages=max_records, timeout=0))
        if not msgs and timeout_ms > 0:
            # consume() waits for max_records or the whole time-out, so an idle worker would
            # hold the first record that arrives for the whole time-out: wake on the first one
            first = _call(lambda: self._c.poll(timeout_ms / 1000.0))
            if first is not None:
                msgs = [first]
                if max_records > 1:
                    msgs += _call(lambda: consume(num_messages=max_records - 1, timeout=0))
        out: list[RawRecord] = []
        append = out.append
        failed: list[int] = []  # where in ``out`` the undecodable records are
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.fatal():
                    raise ClientError(str(err))
                if _undecodable(m, err):
                    failed.append(len(out))
                    append(_errored(m, err))
                continue  # transient: the client retries on its own
            append(
                RawRecord(
                    m.topic(),  # type: ignore[arg-type]
                    m.partition(),  # type: ignore[arg-type]
                    m.offset(),  # type: ignore[arg-type]
                    m.key(),  # type: ignore[arg-type]
                    m.value(),  # type: ignore[arg-type]
                    m.timestamp()[1],
                )
            )
        if self._sought:
            for rec in out:  # read from: positions are librdkafka's again
                if rec.error is None:
                    self._sought.pop((rec.topic, rec.partition), None)
        return self._skip_undecodable(out, failed) if failed else out

    def _skip_undecodable(self, out: list[RawRecord], failed: list[int]) -> list[RawRecord]:
        """Pin each undecodable record to the offset that failed and seek past it.

        librdkafka reports a batch it cannot decompress at the batch's first offset, also when
        it fetched from further in (after a seek past an earlier record of the batch): the
        failed offset is the later of the two. A record of the partition read after the error
        means librdkafka moved past it by itself: no seek then. One report per partition and
        poll: a second one repeats the first.
        """
        drop: set[int] = set()
        done: set[TP] = set()
        for i in failed:
            rec = out[i]
            tp = (rec.topic, rec.partition)
            if any((r.topic, r.partition) == tp and r.error is None for r in out[i + 1 :]):
                continue  # librdkafka went on: the reported offset is the one
            if tp in done:
                drop.add(i)
                continue
            done.add(tp)
            start = self._start(tp)
            if start is not None and start > rec.offset:
                rec = out[i] = dataclasses.replace(rec, offset=start)
            self.seek(tp, rec.offset + 1)
            log.error("skipping undecodable record %s[%d]@%d: %s", *tp, rec.offset, rec.error)
        return [r for i, r in enumerate(out) if i not in drop] if drop else out

    def _start(self, tp: TP) -> int | None:
        """Where reading ``tp`` resumed: the position after the last record read, else the last
        seek target, else the committed offset (None: not known)."""
        position = self.position(tp)
        if position is not None:
            return position
        if tp in self._sought:
            return self._sought[tp]
        try:
            (committed,) = self._c.committed([TopicPartition(*tp)], timeout=5.0)
        except KafkaException:
            return None
        return committed.offset if committed.offset >= 0 else None

    def assignment(self) -> set[TP]:
        return set(_tps(_call(self._c.assignment)))

    def position(self, tp: TP) -> int | None:
        (pos,) = _call(lambda: self._c.position([TopicPartition(*tp)]))
        return pos.offset if pos.offset >= 0 else None

    def highwater(self, tp: TP) -> int | None:
        try:
            _low, high = self._c.get_watermark_offsets(TopicPartition(*tp), cached=True)
        except KafkaException:
            return None
        return high if high >= 0 else None

    def seek(self, tp: TP, offset: int) -> None:
        _call(lambda: self._c.seek(TopicPartition(tp[0], tp[1], offset)))
        self._sought[tp] = offset

    def group_metadata(self) -> Any:
        return _call(self._c.consumer_group_metadata)

    def commit(self, offsets: Offsets) -> None:
        _call(lambda: self._c.commit(offsets=_partitions(offsets), asynchronous=False))

    def close(self) -> None:
        self._c.close()


def _undecodable(m: Message, err: KafkaError) -> bool:
    """True when ``err`` says the record at ``m``'s partition and offset cannot be decoded."""
    partition, offset = m.partition(), m.offset()
    return (
        err.code() in DATA_ERRORS
        and bool(m.topic())
        and partition is not None
        and partition >= 0
        and offset is not None
        and offset >= 0
    )


def _errored(m: Message, err: KafkaError) -> RawRecord:
    """The undecodable record of a per-message error (no key, no value: librdkafka has none)."""
    return RawRecord(
        m.topic(),  # type: ignore[arg-type]
        m.partition(),  # type: ignore[arg-type]
        m.offset(),  # type: ignore[arg-type]
        None,
        None,
        0,
        error=f"{err.name()}: {err.str()}",
    )


class ConfluentProducer:
    """A transactional producer on confluent-kafka."""

    def __init__(self, kafka: KafkaSettings, transactional_id: str, timeout_ms: int) -> None:
        self._failed: list[KafkaError] = []
        self._stuck = False
        self._p = Producer(
            {
                **kafka.confluent_options(),
                "transactional.id": transactional_id,
                "transaction.timeout.ms": timeout_ms,
                "linger.ms": 1,  # the loop flushes each transaction: lingering only adds latency
                "batch.size": 1024 * 1024,
                "message.max.bytes": 4 * 1024 * 1024,
                # no per-record callback into Python for records that made it
                "delivery.report.only.error": True,
                "on_delivery": self._on_delivery,
            }
        )
        try:
            _call(lambda: self._p.init_transactions(_TIMEOUT_S))
        except ClientError:  # no coordinator (a broker outage): release the handle now
            with warnings.catch_warnings():  # "abort failed: init_transactions in progress"
                warnings.simplefilter("ignore", RuntimeWarning)
                self._p.close()
            raise

    def _on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self._failed.append(err)

    def begin_transaction(self) -> None:
        self._check_usable()
        self._failed = []
        _call(self._p.begin_transaction)

    def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        produce = self._p.produce
        while True:
            try:
                produce(topic, value, key)
                return
            except BufferError:  # local queue full: let librdkafka drain it, then retry
                self._p.poll(0.05)
            except KafkaException as exc:
                raise ClientError(str(exc.args[0] if exc.args else exc)) from exc

    def flush(self) -> None:
        deadline = time.monotonic() + _TIMEOUT_S
        while _call(lambda: self._p.flush(1.0)) > 0:
            if time.monotonic() > deadline:
                raise ClientError(f"records not acknowledged within {_TIMEOUT_S:.0f}s")
        if self._failed:
            raise ClientError(f"{len(self._failed)} records not written: {self._failed[0]}")

    def send_offsets_to_transaction(self, offsets: Offsets, group_metadata: Any) -> None:
        # librdkafka can block here past its timeout when the group coordinator went away
        # (confluentinc/librdkafka#5456, #5511): a watchdog gives up on this producer instead
        # of stalling the loop, which then builds a new one (fencing this one).
        self._check_usable()
        outcome: list[BaseException | None] = []

        def call() -> None:
            try:
                _call(
                    lambda: self._p.send_offsets_to_transaction(
                        _partitions(offsets), group_metadata, _TIMEOUT_S
                    )
                )
                outcome.append(None)
            except BaseException as exc:  # handed to the caller below
                outcome.append(exc)

        # a daemon thread: one stuck in librdkafka must not keep the process from exiting
        thread = threading.Thread(target=call, name="txn-offsets", daemon=True)
        thread.start()
        thread.join(_TIMEOUT_S + 5.0)
        if not outcome:
            self._stuck = True
            raise ClientError("send_offsets_to_transaction hung; replacing the producer")
        if outcome[0] is not None:
            raise outcome[0]

    def _check_usable(self) -> None:
        if self._stuck:
            raise ClientError("this producer is stuck in a transactional call; replace it")

    def commit_transaction(self) -> None:
        for _ in range(3):
            try:
                self._p.commit_transaction(_TIMEOUT_S)
                return
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                if isinstance(err, KafkaError) and err.retriable():
                    continue  # librdkafka: a retriable commit error may simply be retried
                raise ClientError(str(err or exc)) from exc
        raise ClientError("commit_transaction kept failing with retriable errors")

    def abort_transaction(self) -> None:
        self._check_usable()
        self._failed = []
        _call(lambda: self._p.abort_transaction(_TIMEOUT_S))

    def close(self) -> None:
        if self._stuck:
            return  # its call may never return; the next producer's init fences it
        with contextlib.suppress(KafkaException):  # a fenced producer has nothing to flush
            self._p.flush(5.0)
        # destroy the librdkafka handle now: the delivery callback makes a reference cycle, so
        # without this its threads (and their reconnects) live on until a full collection
        self._p.close()
