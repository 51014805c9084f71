"""The decision/outcome sink: Kafka (read_committed) into the store, idempotent on event_id.

One consumer group reads ``events``, ``decisions``, ``decisions.shadow``, ``events.dlq`` and
``outcomes``. Per poll: parse every record by topic, write them all in ONE database
transaction (``INSERT .. ON CONFLICT DO NOTHING``), and only then commit the consumed offsets.
A crash between the two replays the batch, which the idempotent writes absorb, so each record
lands exactly once. A record that does not parse is logged and counted, never fatal.

Run it on its own (``decisionflow sink``; ``--until-idle 10`` exits once caught up) or next to a
worker; it needs only Kafka and the database.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from kafka import KafkaConsumer, KafkaProducer
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from decisioning.contracts import DeadLetter, Decision, Event, Outcome, encode_record
from decisioning.validation import parse_event
from storage import store
from workers.kafka_client import TP, ClientError, Consumer, RawRecord, make_consumer
from workers.settings import SinkSettings

__all__ = ["DecisionSink", "SinkStats", "labels_for_decisions", "publish_outcomes"]

log = logging.getLogger(__name__)
_MAX_EVENT_BYTES = 1024 * 1024


@dataclass
class SinkStats:
    """What a sink run did: records read, rows newly written, bad records by topic."""

    read: Counter[str] = field(default_factory=Counter)
    written: Counter[str] = field(default_factory=Counter)
    bad: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)  # valid records the store refused
    batches: int = 0
    db_errors: int = 0

    def summary(self) -> str:
        """One line for logs and the CLI."""
        return (
            f"batches={self.batches} read={dict(self.read)} written={dict(self.written)} "
            f"bad={dict(self.bad)} refused={dict(self.refused)} db_errors={self.db_errors}"
        )


@dataclass
class _Parsed:
    events: list[Event] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    shadow: list[Decision] = field(default_factory=list)
    dlq: list[DeadLetter] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)


class DecisionSink:
    """Consumes the five topics and lands them in the store until stopped (or idle)."""

    def __init__(self, settings: SinkSettings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine or store.make_engine(settings.database_url.get_secret_value())
        self.stats = SinkStats()
        self._stop = threading.Event()
        topics = settings.topics
        self._kinds: dict[str, str] = {
            topics.events: "events",
            topics.decisions: "decisions",
            topics.shadow: "shadow",
            topics.dlq: "dlq",
            topics.outcomes: "outcomes",
        }

    def stop(self) -> None:
        """Finish the batch in hand, commit and return from :meth:`run`."""
        self._stop.set()

    def _consumer(self) -> Consumer:
        s = self.settings
        return make_consumer(
            s.kafka_client,
            s.kafka,
            group_id=s.sink_group_id,
            topics=list(self._kinds),
            max_poll_records=s.batch_size,
        )

    def run(self, until_idle_s: float | None = None) -> SinkStats:
        """Land records until :meth:`stop`, or until nothing arrived for ``until_idle_s``."""
        store.create_schema(self.engine)
        consumer = self._consumer()
        last_data = time.monotonic()
        assigned = False
        try:
            while not self._stop.is_set():
                try:
                    records = consumer.poll(500, self.settings.batch_size)
                    if not assigned and consumer.assignment():
                        assigned, last_data = True, time.monotonic()  # idle counts from here
                except ClientError as exc:
                    log.warning("kafka poll failed (%s); retrying", exc)
                    self._stop.wait(1.0)
                    continue
                if records:
                    last_data = time.monotonic()
                    if self._land(records):
                        consumer.commit(self._offsets(records))
                    else:  # database down: rewind and try the same records again
                        self._rewind(consumer, records)
                        self._stop.wait(2.0)
                elif until_idle_s is not None and time.monotonic() - last_data >= until_idle_s:
                    break
        finally:
            consumer.close()
        log.info("sink stopped: %s", self.stats.summary())
        return self.stats

    # ------------------------------------------------------------------ one batch

    def _parse(self, records: Sequence[RawRecord]) -> _Parsed:
        out = _Parsed()
        for m in records:
            kind = self._kinds.get(m.topic, "unknown")
            self.stats.read[kind] += 1
            raw: bytes = m.value or b""
            try:
                if kind == "events":
                    out.events.append(parse_event(raw, _MAX_EVENT_BYTES))
                elif kind in ("decisions", "shadow"):
                    d = Decision.model_validate_json(raw)
                    (out.shadow if kind == "shadow" else out.decisions).append(d)
                elif kind == "dlq":
                    out.dlq.append(DeadLetter.model_validate_json(raw))
                elif kind == "outcomes":
                    out.outcomes.append(Outcome.model_validate_json(raw))
                else:
                    raise ValueError(f"record from unexpected topic {m.topic}")
            except (ValueError, ValidationError) as exc:
                # malformed events also sit in the DLQ (the worker put them there)
                self.stats.bad[kind] += 1
                log.warning(
                    "skipping bad %s record %s[%d]@%d: %s",
                    kind,
                    m.topic,
                    m.partition,
                    m.offset,
                    str(exc)[:300],
                )
        return out

    def _land(self, records: Sequence[RawRecord]) -> bool:
        """Write a batch in one transaction; False (retry the batch) when the store is down.

        A record the store refuses (bad data, not an outage) must not stall the sink: the batch
        is then written record by record, and each refused one is counted, logged and skipped.
        """
        parsed = self._parse(records)
        try:
            try:
                written = self._write(parsed)
            except (DataError, IntegrityError) as exc:
                log.warning("the store refused a record (%s); writing one by one", _short(exc))
                written = self._write_each(parsed)
        except SQLAlchemyError:
            self.stats.db_errors += 1
            log.exception("database write failed; the batch will be retried")
            return False
        self.stats.written.update({k: v for k, v in written.items() if v})
        self.stats.batches += 1
        return True

    def _write(self, parsed: _Parsed) -> Counter[str]:
        with self.engine.begin() as conn:
            return Counter(
                {
                    "events": store.write_events(conn, parsed.events),
                    "decisions": store.write_decisions(conn, parsed.decisions),
                    "shadow": store.write_decisions(conn, parsed.shadow, shadow=True),
                    "dlq": store.write_dead_letters(conn, parsed.dlq),
                    "outcomes": store.write_outcomes(conn, parsed.outcomes),
                }
            )

    def _write_each(self, parsed: _Parsed) -> Counter[str]:
        written: Counter[str] = Counter()
        for kind in ("events", "decisions", "shadow", "dlq", "outcomes"):
            for item in getattr(parsed, kind):
                try:
                    written += self._write(_Parsed(**{kind: [item]}))
                except (DataError, IntegrityError) as exc:
                    self.stats.refused[kind] += 1
                    key = getattr(item, "event_id", None) or getattr(item, "source_offset", "?")
                    log.error("store refused %s record %s: %s", kind, key, _short(exc))
        return written

    @staticmethod
    def _offsets(records: Sequence[RawRecord]) -> dict[TP, int]:
        offsets: dict[TP, int] = {}
        for m in records:
            tp = (m.topic, m.partition)
            if m.offset + 1 > offsets.get(tp, -1):
                offsets[tp] = m.offset + 1
        return offsets

    @staticmethod
    def _rewind(consumer: Consumer, records: Sequence[RawRecord]) -> None:
        starts: dict[TP, int] = {}
        for m in records:
            tp = (m.topic, m.partition)
            starts[tp] = min(starts.get(tp, m.offset), m.offset)
        for tp, offset in starts.items():
            consumer.seek(tp, offset)


def publish_outcomes(
    settings: SinkSettings,
    labels: dict[str, tuple[str, str]],
    *,
    topic: str | None = None,
    delay: timedelta = timedelta(0),
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    """Publish one :class:`Outcome` per ``event_id -> (entity_id, label)``; returns the count.

    ``observed_at`` is now + ``delay`` (labels arrive later than decisions). Keyed by entity.
    """
    producer = KafkaProducer(
        acks="all", enable_idempotence=True, linger_ms=5, **settings.kafka.client_options()
    )
    target = topic or settings.topics.outcomes
    try:
        for event_id, (entity_id, label) in labels.items():
            outcome = Outcome(
                event_id=event_id, entity_id=entity_id, label=label, observed_at=now() + delay
            )
            producer.send(target, key=entity_id.encode(), value=encode_record(outcome))
        producer.flush()
    finally:
        producer.close()
    return len(labels)


def labels_for_decisions(
    settings: SinkSettings,
    truth: dict[str, str],
    *,
    share: float = 1.0,
    seed: int = 0,
    idle_ms: int = 3000,
) -> dict[str, tuple[str, str]]:
    """Read committed decisions and pick labels for them from ``truth`` (entity_id -> label).

    ``share`` of the decided events (a seeded choice) get a label; decisions on entities that
    ``truth`` does not know are skipped. Returns ``event_id -> (entity_id, label)``.
    """
    import random

    consumer = KafkaConsumer(
        settings.topics.decisions,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
        consumer_timeout_ms=idle_ms,
        **settings.kafka.client_options(),
    )
    rng = random.Random(seed)
    out: dict[str, tuple[str, str]] = {}
    try:
        for m in consumer:
            try:
                d = Decision.model_validate_json(m.value or b"")
            except ValidationError:
                continue
            label = truth.get(d.entity_id)
            if label is not None and d.event_id not in out and rng.random() < share:
                out[d.event_id] = (d.entity_id, label)
    finally:
        consumer.close()
    return out


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
