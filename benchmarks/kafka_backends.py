"""Kafka client backends behind one small interface: kafka-python (default) or confluent-kafka.

The interface is what an exactly-once consume -> produce loop needs and nothing more:

* :class:`StreamConsumer` — ``poll`` a list of :class:`~workers.engine.RawRecord`, the group
  metadata for ``send_offsets_to_transaction``, a plain offset ``commit`` (for loops without
  transactions), ``close``.
* :class:`StreamProducer` — ``begin_transaction``, ``send``, ``send_offsets_to_transaction``,
  ``commit_transaction``, ``abort_transaction``, ``flush``, ``close``.

Offsets are ``{(topic, partition): next_offset_to_read}`` in both backends.

What is wired where: the production decision loop (:mod:`workers.decide_loop`) still talks to
kafka-python directly; this module is used by the benchmark's ceiling loop and its
benchmark-only end-to-end loop (``benchmarks/loops.py``) to compare the two clients on the
same code path. ``confluent-kafka`` is optional (the ``fast`` extra) and imported lazily.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Literal, Protocol

from workers.engine import RawRecord
from workers.settings import KafkaSettings

__all__ = [
    "BACKENDS",
    "Backend",
    "Offsets",
    "StreamConsumer",
    "StreamProducer",
    "backend_available",
    "confluent_config",
    "make_consumer",
    "make_producer",
]

Backend = Literal["kafka-python", "confluent"]
BACKENDS: tuple[Backend, ...] = ("kafka-python", "confluent")
Offsets = Mapping[tuple[str, int], int]


class StreamConsumer(Protocol):
    """A group consumer reading committed records only (``read_committed``)."""

    def poll(self, timeout_ms: int, max_records: int) -> list[RawRecord]:
        """Up to ``max_records`` records, waiting at most ``timeout_ms`` for the first."""
        ...

    def group_metadata(self) -> Any:
        """The consumer's group metadata, for ``send_offsets_to_transaction`` (KIP-447)."""
        ...

    def commit(self, offsets: Offsets) -> None:
        """Commit offsets outside any transaction (at-least-once loops)."""
        ...

    def close(self) -> None:
        """Leave the group and close the client."""
        ...


class StreamProducer(Protocol):
    """A producer; transactional when built with a ``transactional_id``."""

    def begin_transaction(self) -> None:
        """Open a transaction."""
        ...

    def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Queue one record (asynchronous)."""
        ...

    def send_offsets_to_transaction(self, offsets: Offsets, consumer: StreamConsumer) -> None:
        """Add the consumed offsets, with the consumer's group metadata, to the transaction."""
        ...

    def commit_transaction(self) -> None:
        """Flush and commit the open transaction."""
        ...

    def abort_transaction(self) -> None:
        """Abort the open transaction."""
        ...

    def flush(self) -> None:
        """Block until every queued record is acknowledged."""
        ...

    def close(self) -> None:
        """Flush and close."""
        ...


def backend_available(backend: Backend) -> bool:
    """True when the client library of ``backend`` can be imported."""
    try:
        if backend == "confluent":
            import confluent_kafka  # noqa: F401
        else:
            import kafka  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------- kafka-python


class _KafkaPythonConsumer:
    def __init__(self, kafka: KafkaSettings, group_id: str, topic: str, max_poll_records: int):
        from kafka import KafkaConsumer

        self._c = KafkaConsumer(
            group_id=group_id,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            max_poll_records=max_poll_records,
            fetch_max_bytes=16 * 1024 * 1024,
            **kafka.client_options(),
        )
        self._c.subscribe([topic])

    def poll(self, timeout_ms: int, max_records: int) -> list[RawRecord]:
        polled = self._c.poll(timeout_ms=timeout_ms, max_records=max(max_records, 1))
        return [
            RawRecord(m.topic, m.partition, m.offset, m.key, m.value)
            for msgs in polled.values()
            for m in msgs
        ]

    def group_metadata(self) -> Any:
        return self._c.group_metadata()

    def commit(self, offsets: Offsets) -> None:
        from kafka import TopicPartition
        from kafka.structs import OffsetAndMetadata

        self._c.commit(
            {TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()}
        )

    def close(self) -> None:
        self._c.close()


class _KafkaPythonProducer:
    def __init__(self, kafka: KafkaSettings, transactional_id: str | None, timeout_ms: int):
        from kafka import KafkaProducer

        extra: dict[str, Any] = {}
        if transactional_id is not None:
            extra = {"transactional_id": transactional_id, "transaction_timeout_ms": timeout_ms}
        # the same options as workers.decide_loop.DecisionLoop._make_producer
        self._p = KafkaProducer(
            linger_ms=5,
            batch_size=256 * 1024,
            compression_type=None,
            max_request_size=4 * 1024 * 1024,
            **extra,
            **kafka.client_options(),
        )
        if transactional_id is not None:
            self._p.init_transactions()

    def begin_transaction(self) -> None:
        self._p.begin_transaction()

    def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        self._p.send(topic, key=key, value=value)

    def send_offsets_to_transaction(self, offsets: Offsets, consumer: StreamConsumer) -> None:
        from kafka import TopicPartition
        from kafka.structs import OffsetAndMetadata

        self._p.send_offsets_to_transaction(
            {TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()},
            consumer.group_metadata(),
        )

    def commit_transaction(self) -> None:
        self._p.commit_transaction()

    def abort_transaction(self) -> None:
        self._p.abort_transaction()

    def flush(self) -> None:
        self._p.flush()

    def close(self) -> None:
        self._p.close(timeout=5)


# --------------------------------------------------------------------------- confluent-kafka


def confluent_config(kafka: KafkaSettings) -> dict[str, Any]:
    """librdkafka configuration equivalent to :meth:`KafkaSettings.client_options`."""
    conf: dict[str, Any] = {
        "bootstrap.servers": kafka.bootstrap_servers,
        "security.protocol": kafka.security_protocol,
        "client.id": kafka.client_id,
    }
    if kafka.sasl_mechanism:
        conf["sasl.mechanism"] = kafka.sasl_mechanism
        if kafka.sasl_username is not None:
            conf["sasl.username"] = kafka.sasl_username
        if kafka.sasl_password is not None:
            conf["sasl.password"] = kafka.sasl_password.get_secret_value()
    for ours, theirs in (
        ("ssl_cafile", "ssl.ca.location"),
        ("ssl_certfile", "ssl.certificate.location"),
        ("ssl_keyfile", "ssl.key.location"),
    ):
        if value := getattr(kafka, ours):
            conf[theirs] = value
    if kafka.ssl_password is not None:
        conf["ssl.key.password"] = kafka.ssl_password.get_secret_value()
    return conf


class _ConfluentConsumer:
    def __init__(self, kafka: KafkaSettings, group_id: str, topic: str, max_poll_records: int):
        from confluent_kafka import Consumer

        self._c = Consumer(
            {
                **confluent_config(kafka),
                "group.id": group_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
                "enable.partition.eof": False,
            }
        )
        self._c.subscribe([topic])

    def poll(self, timeout_ms: int, max_records: int) -> list[RawRecord]:
        from confluent_kafka import KafkaException

        msgs = self._c.consume(num_messages=max(max_records, 1), timeout=timeout_ms / 1000.0)
        out: list[RawRecord] = []
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.fatal():
                    raise KafkaException(err)
                continue  # transient (e.g. partition EOF): the client retries on its own
            topic, partition, offset = m.topic(), m.partition(), m.offset()
            assert topic is not None and partition is not None and offset is not None
            out.append(RawRecord(topic, partition, offset, m.key(), m.value()))
        return out

    def group_metadata(self) -> Any:
        return self._c.consumer_group_metadata()

    def commit(self, offsets: Offsets) -> None:
        from confluent_kafka import TopicPartition

        self._c.commit(
            offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False
        )

    def close(self) -> None:
        self._c.close()


class _ConfluentProducer:
    def __init__(self, kafka: KafkaSettings, transactional_id: str | None, timeout_ms: int):
        from confluent_kafka import Producer

        conf: dict[str, Any] = {
            **confluent_config(kafka),
            "enable.idempotence": True,
            "linger.ms": 5,
            "batch.size": 256 * 1024,
            "message.max.bytes": 4 * 1024 * 1024,
        }
        if transactional_id is not None:
            conf |= {"transactional.id": transactional_id, "transaction.timeout.ms": timeout_ms}
        self._p = Producer(conf)
        self._transactional = transactional_id is not None
        if self._transactional:
            self._p.init_transactions(30.0)

    def begin_transaction(self) -> None:
        self._p.begin_transaction()

    def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        while True:
            try:
                self._p.produce(topic, value=value, key=key)
                return
            except BufferError:  # local queue full: serve delivery reports, then retry
                self._p.poll(0.05)

    def send_offsets_to_transaction(self, offsets: Offsets, consumer: StreamConsumer) -> None:
        from confluent_kafka import TopicPartition

        self._p.send_offsets_to_transaction(
            [TopicPartition(t, p, o) for (t, p), o in offsets.items()],
            consumer.group_metadata(),
            30.0,
        )

    def commit_transaction(self) -> None:
        self._p.commit_transaction(30.0)

    def abort_transaction(self) -> None:
        self._p.abort_transaction(30.0)

    def flush(self) -> None:
        deadline = time.monotonic() + 60
        while self._p.flush(1.0) > 0 and time.monotonic() < deadline:
            pass

    def close(self) -> None:
        self._p.flush(5.0)


# --------------------------------------------------------------------------- factories


def make_consumer(
    backend: Backend, kafka: KafkaSettings, *, group_id: str, topic: str, max_poll_records: int
) -> StreamConsumer:
    """A ``read_committed`` group consumer of ``topic`` (auto commit off, earliest reset)."""
    if backend == "confluent":
        return _ConfluentConsumer(kafka, group_id, topic, max_poll_records)
    return _KafkaPythonConsumer(kafka, group_id, topic, max_poll_records)


def make_producer(
    backend: Backend,
    kafka: KafkaSettings,
    *,
    transactional_id: str | None,
    transaction_timeout_ms: int = 15_000,
) -> StreamProducer:
    """A producer (idempotent; transactional and initialised when ``transactional_id``)."""
    if backend == "confluent":
        return _ConfluentProducer(kafka, transactional_id, transaction_timeout_ms)
    return _KafkaPythonProducer(kafka, transactional_id, transaction_timeout_ms)
