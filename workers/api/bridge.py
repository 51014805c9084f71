"""The API's two Kafka clients: an idempotent producer of events and one decisions reader.

The reader is no group member: it is assigned every partition of the decisions topic (and of
the dead-letter topic, so an event a worker refuses ends its wait too), starting at the end
offsets of start-up, ``read_committed``, and hands what it reads to the
:class:`~workers.api.waiters.DecisionHub`. A record written after start-up cannot be missed:
its offset is past those ends. confluent-kafka directly: the seam's consumer
(:mod:`workers.kafka_client`) is a group member by design.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from workers.api.waiters import DecisionHub, Rejected, decision_event_id, rejected_event
from workers.settings import ApiSettings

__all__ = ["Bridge", "KafkaBridge", "PublishError", "Readiness"]

log = logging.getLogger(__name__)
_METADATA_TIMEOUT_S = 10.0
_POLL_S = 0.2  # the reader's and the producer's blocking wait per call (not a busy loop)
_STALE_S = 5.0  # a reader that has not polled for this long is not ready
_CHECK_EVERY_S, _CHECK_TIMEOUT_S = 5.0, 5.0  # the brokers' metadata check (readiness)


class PublishError(RuntimeError):
    """The event was not acknowledged by the brokers (the request answers 503)."""


@dataclass(frozen=True)
class Readiness:
    """What ``/readyz`` reports."""

    kafka: bool
    assigned: bool
    caught_up: bool
    lag: int | None = None
    detail: dict[str, str] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        """Everything is fine."""
        return self.kafka and self.assigned and self.caught_up


class Bridge(Protocol):
    """What the app needs of Kafka (:class:`KafkaBridge`, or the in-package double)."""

    def start(self, hub: DecisionHub) -> None:
        """Connect, assign the reader at the end of the topics and start feeding ``hub``
        (blocking; called once on a worker thread at start-up)."""
        ...

    def publish(self, key: bytes, value: bytes) -> asyncio.Future[None]:
        """Send one event (on the event loop); the future ends when the brokers acked it or
        fails with :class:`PublishError`."""
        ...

    def readiness(self) -> Readiness:
        """Kafka reachable, reader assigned and caught up (blocking: on a worker thread)."""
        ...

    def lag(self) -> int | None:
        """Committed records the reader has not read yet (None before it knows)."""
        ...

    def close(self) -> None:
        """Stop reading, flush the producer, close both (blocking)."""
        ...


def _settle(future: asyncio.Future[None], error: KafkaError | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(PublishError(f"event not written: {error.str()}"))


class KafkaBridge:
    """:class:`Bridge` on confluent-kafka: the producer's delivery reports are served by a
    thread blocked in ``poll``, the reader by a thread blocked in ``consume``."""

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.topics = settings.topics
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._producer: Producer | None = None
        self._consumer: Consumer | None = None
        self._assigned: list[TopicPartition] = []
        self._start_offsets: dict[tuple[str, int], int] = {}
        self._lag: int | None = None
        self._polled_at = 0.0
        self._hub: DecisionHub | None = None
        self._kafka: tuple[float, bool, str] = (0.0, False, "not checked yet")
        """(monotonic time, brokers answered, detail) of the last metadata check."""

    # ------------------------------------------------------------------ start / stop

    def start(self, hub: DecisionHub) -> None:
        s = self.settings
        self._hub = hub
        common = s.kafka.confluent_options()
        self._producer = Producer(
            {
                **common,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": s.api.linger_ms,
                "message.timeout.ms": int(s.api.publish_timeout_s * 1000),
            }
        )
        self._consumer = Consumer(
            {
                **common,
                # librdkafka wants a group id; with assign() and no commits it never joins
                "group.id": f"decisionflow-api-{uuid.uuid4().hex[:12]}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": False,
                "fetch.wait.max.ms": 50,
            }
        )
        self._assign()
        self._check_kafka()
        for name, target in (
            ("api-producer", self._serve_producer),
            ("api-reader", self._read),
            ("api-kafka-check", self._watch_kafka),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _partitions(self, topic: str, required: bool) -> list[int]:
        assert self._consumer is not None
        deadline = time.monotonic() + _METADATA_TIMEOUT_S
        while True:  # a topic created a moment ago may still have no leader: ask again
            listed = self._consumer.list_topics(topic, timeout=_METADATA_TIMEOUT_S)
            meta = listed.topics.get(topic)
            if meta is not None and meta.error is None and meta.partitions:
                break
            if time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        if meta is None or meta.error is not None or not meta.partitions:
            if required:
                raise KafkaException(f"topic {topic!r} has no partitions (does it exist?)")
            log.warning("topic %r not found: dead letters will not end waits", topic)
            return []
        return sorted(meta.partitions)

    def _assign(self) -> None:
        """Every partition of the decisions and dead-letter topics, from their end now."""
        assert self._consumer is not None
        wanted = [(self.topics.decisions, p) for p in self._partitions(self.topics.decisions, True)]
        wanted += [(self.topics.dlq, p) for p in self._partitions(self.topics.dlq, False)]
        parts = []
        for topic, p in wanted:
            _low, high = self._consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=_METADATA_TIMEOUT_S, cached=False
            )
            self._start_offsets[(topic, p)] = high
            parts.append(TopicPartition(topic, p, high))
        self._consumer.assign(parts)
        self._assigned = parts
        self._polled_at = time.monotonic()
        self._lag = 0
        log.info("decisions reader assigned %d partitions at their end", len(parts))

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)
        if self._consumer is not None:
            self._consumer.close()
        if self._producer is not None:
            left = self._producer.flush(5.0)
            if left:
                log.warning("%d events not acknowledged at shutdown", left)
            self._producer.close()

    # ------------------------------------------------------------------ producing

    def publish(self, key: bytes, value: bytes) -> asyncio.Future[None]:
        assert self._producer is not None, "start() first"
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def delivered(error: KafkaError | None, _msg: Message) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                loop.call_soon_threadsafe(_settle, future, error)

        try:
            self._producer.produce(self.topics.events, value, key, on_delivery=delivered)
        except (BufferError, KafkaException) as exc:
            raise PublishError(f"event not queued: {exc}") from exc
        return future

    def _serve_producer(self) -> None:
        assert self._producer is not None
        while not self._stop.is_set():
            self._producer.poll(_POLL_S)  # runs the delivery callbacks

    # ------------------------------------------------------------------ reading

    def _read(self) -> None:
        assert self._consumer is not None and self._hub is not None
        consumer, hub, next_lag = self._consumer, self._hub, 0.0
        while not self._stop.is_set():
            try:
                msgs = consumer.consume(num_messages=1000, timeout=_POLL_S)
            except KafkaException as exc:
                log.warning("decisions reader: %s", exc)
                self._stop.wait(1.0)
                continue
            self._polled_at = now = time.monotonic()
            if msgs:
                try:
                    hub.deliver(*self._parse(msgs))
                except Exception:  # a bug must not stop the reader: the waits time out
                    log.exception("decisions reader: could not hand %d records over", len(msgs))
            if now >= next_lag:
                self._lag = self._measure_lag()
                next_lag = now + 1.0

    def _parse(
        self, msgs: list[Message]
    ) -> tuple[list[tuple[str, bytes]], list[tuple[str, Rejected]]]:
        decisions: list[tuple[str, bytes]] = []
        rejected: list[tuple[str, Rejected]] = []
        for m in msgs:
            error = m.error()
            if error is not None:
                if error.fatal():
                    log.error("decisions reader: fatal %s", error)
                continue
            value = m.value()
            if m.topic() == self.topics.decisions:
                event_id = decision_event_id(value)
                if event_id is not None and value is not None:
                    decisions.append((event_id, bytes(value)))
            elif (dead := rejected_event(value, self.topics.events)) is not None:
                rejected.append(dead)
        return decisions, rejected

    def _measure_lag(self) -> int | None:
        """Sum over partitions of the last stable offset (read_committed: the cached high
        watermark) minus the reader's position."""
        assert self._consumer is not None
        total = 0
        try:
            positions = self._consumer.position(
                [TopicPartition(tp.topic, tp.partition) for tp in self._assigned]
            )
            for tp in positions:
                _low, high = self._consumer.get_watermark_offsets(tp, cached=True)
                position = tp.offset if tp.offset >= 0 else self._start_offsets[
                    (tp.topic, tp.partition)
                ]  # fmt: skip
                if high >= 0:
                    total += max(0, high - position)
        except KafkaException:
            return None
        return total

    def lag(self) -> int | None:
        return self._lag

    # ------------------------------------------------------------------ readiness

    def _check_kafka(self) -> None:
        """One metadata round trip to the brokers: are they there, is the events topic."""
        assert self._producer is not None
        try:
            meta = self._producer.list_topics(self.topics.events, timeout=_CHECK_TIMEOUT_S)
            topic = meta.topics.get(self.topics.events)
            ok = topic is not None and topic.error is None
            detail = "ok" if ok else f"topic {self.topics.events!r} not available"
        except KafkaException as exc:
            ok, detail = False, f"brokers not reachable: {exc}"
        self._kafka = (time.monotonic(), ok, detail)

    def _watch_kafka(self) -> None:
        """Checks the brokers every few seconds, so that /readyz never blocks on them."""
        while not self._stop.wait(_CHECK_EVERY_S):
            self._check_kafka()

    def readiness(self) -> Readiness:
        if self._producer is None or self._consumer is None:
            return Readiness(False, False, False, None, {"reader": "not started"})
        at, kafka, kafka_detail = self._kafka
        if time.monotonic() - at > 3 * (_CHECK_EVERY_S + _CHECK_TIMEOUT_S):
            kafka, kafka_detail = False, "broker check stalled"
        alive = all(t.is_alive() for t in self._threads)
        fresh = time.monotonic() - self._polled_at < _STALE_S
        assigned = bool(self._assigned) and alive and fresh
        lag = self._lag
        caught_up = lag is not None and lag <= self.settings.api.ready_max_lag
        detail = {
            "kafka": kafka_detail,
            "reader": "ok" if assigned else ("stalled" if alive else "stopped"),
            "lag": "unknown" if lag is None else str(lag),
        }
        return Readiness(kafka, assigned, caught_up, lag, detail)
