"""The decision/outcome sink: Kafka (read_committed) into the store, idempotent on event_id.

One consumer group reads ``events``, ``decisions``, ``decisions.shadow``, ``events.dlq`` and
``outcomes``. Per poll: parse every record by topic, write them all in ONE database
transaction (``INSERT .. ON CONFLICT DO NOTHING``), and only then commit the consumed offsets.
A crash between the two replays the batch, which the idempotent writes absorb, so each record
lands exactly once.

Data errors are not outages. A record the database refuses for its content (a value too long,
out of range, a NUL, a constraint) is isolated by bisecting the batch under SAVEPOINTs and kept
in the store's ``quarantine`` table, raw bytes and reason, in the same transaction as the rest
of the batch; a record that does not parse is quarantined the same way (except malformed
events: the worker dead-lettered those already). The partition moves on. A database that is
down or unreachable is an outage: the batch is rewound and retried with back-off
(0.5 s -> 30 s), its offsets stay where they are. :meth:`DecisionSink.stop` (SIGTERM, SIGINT
via :func:`stop_on_signals`) ends a back-off wait at once.

Run it on its own (``decisionflow sink``; ``--until-idle 10`` exits once caught up) or next to a
worker; it needs only Kafka and the database.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Literal

from kafka import KafkaConsumer, KafkaProducer
from pydantic import ValidationError
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError, StatementError

from decisioning.contracts import (
    DeadLetter,
    Decision,
    Event,
    Outcome,
    UndecodableRecordError,
    encode_record,
)
from decisioning.validation import parse_event
from storage import store
from workers import metrics
from workers.kafka_client import TP, ClientError, Consumer, RawRecord, make_consumer
from workers.settings import SinkSettings

__all__ = [
    "DecisionSink",
    "QuarantineRetry",
    "SinkStats",
    "is_data_error",
    "labels_for_decisions",
    "publish_outcomes",
    "retry_quarantined",
    "stop_on_signals",
]

log = logging.getLogger(__name__)
_MAX_EVENT_BYTES = 1024 * 1024
_MAX_ERROR_CHARS = 1000
_KINDS = ("events", "decisions", "shadow", "dlq", "outcomes")
_Value = Event | Decision | DeadLetter | Outcome
_Stage = Literal["parse", "store"]


@dataclass
class SinkStats:
    """What a sink run did: records read, rows newly written, records it could not land."""

    read: Counter[str] = field(default_factory=Counter)
    written: Counter[str] = field(default_factory=Counter)
    bad: Counter[str] = field(default_factory=Counter)  # did not parse
    refused: Counter[str] = field(default_factory=Counter)  # valid records the store refused
    quarantined: Counter[str] = field(default_factory=Counter)  # kept in `quarantine`
    batches: int = 0
    db_errors: int = 0  # failed attempts at a batch while the database was unavailable

    def summary(self) -> str:
        """One line for logs and the CLI."""
        return (
            f"batches={self.batches} read={dict(self.read)} written={dict(self.written)} "
            f"bad={dict(self.bad)} refused={dict(self.refused)} "
            f"quarantined={dict(self.quarantined)} db_errors={self.db_errors}"
        )


@dataclass(frozen=True, slots=True)
class _Item:
    """A parsed record and where it came from."""

    record: RawRecord
    kind: str
    value: _Value


@dataclass
class _Batch:
    """One poll, parsed: items to write, records to quarantine, counts per kind."""

    items: list[_Item] = field(default_factory=list)
    rejects: list[store.QuarantinedRecord] = field(default_factory=list)
    read: Counter[str] = field(default_factory=Counter)
    bad: Counter[str] = field(default_factory=Counter)


def is_data_error(exc: BaseException) -> bool:
    """True when the database refused a statement for the values in it, not for an outage.

    Data: SQLAlchemy's ``DataError`` and ``IntegrityError`` (value too long, out of range,
    invalid text such as a NUL, a constraint; duplicates never get here, the writes skip
    them), and a value the driver could not even bind (``ValueError``, ``OverflowError``:
    sqlite3 raises those unwrapped). Everything else, ``OperationalError`` and
    ``InterfaceError`` (connection lost, server shutting down, deadlock, disk full),
    ``ProgrammingError`` (missing table, privileges) included, is treated as an outage.
    """
    if isinstance(exc, DBAPIError):
        return not exc.connection_invalidated and isinstance(exc, DataError | IntegrityError)
    if isinstance(exc, StatementError):
        return isinstance(exc.orig, ValueError | OverflowError)
    return isinstance(exc, ValueError | OverflowError) and not isinstance(exc, SQLAlchemyError)


def _is_outage(exc: BaseException) -> bool:
    return isinstance(exc, SQLAlchemyError) and not is_data_error(exc)


class DecisionSink:
    """Consumes the five topics of every flow and lands them in the store until stopped (or
    idle). A decision row names its flow's model (``model_name``)."""

    # back-off after a failed database write (or schema check): doubles from the first to the
    # second, resets after a batch lands
    retry_delays_s: tuple[float, float] = (0.5, 30.0)

    def __init__(self, settings: SinkSettings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine or store.make_engine(settings.database_url.get_secret_value())
        self.stats = SinkStats()
        self._stop = threading.Event()
        self._delay_s = self.retry_delays_s[0]
        self._kinds: dict[str, str] = {}  # topic -> kind, over every flow's topics
        for topics in settings.flow_topics().values():
            self._kinds.update(
                {
                    topics.events: "events",
                    topics.decisions: "decisions",
                    topics.shadow: "shadow",
                    topics.dlq: "dlq",
                    topics.outcomes: "outcomes",
                }
            )

    def stop(self) -> None:
        """Return from :meth:`run` soon: a back-off wait ends at once; a batch in hand is
        finished (committed) when it can be, else left for the next run to re-read."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop.is_set()

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
        if not self._ensure_schema():
            log.info("sink stopped before the database was reachable")
            return self.stats
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
                        self._delay_s = self.retry_delays_s[0]
                        self._commit(consumer, records)
                    else:  # database down: rewind and try the same records again
                        self._rewind(consumer, records)
                        self._back_off()
                elif until_idle_s is not None and self._idle(assigned, last_data, until_idle_s):
                    break
        finally:
            consumer.close()
        log.info("sink stopped: %s", self.stats.summary())
        return self.stats

    @staticmethod
    def _idle(assigned: bool, last_data: float, until_idle_s: float) -> bool:
        """Caught up: nothing for ``until_idle_s`` since the assignment (a join still under
        way, e.g. a slow broker or a SASL handshake, is waited for up to a minute)."""
        quiet = time.monotonic() - last_data
        return quiet >= until_idle_s and (assigned or quiet >= until_idle_s + 60)

    def _back_off(self) -> None:
        """Wait (until :meth:`stop`) before the next attempt; the wait doubles each time."""
        delay, self._delay_s = self._delay_s, min(self._delay_s * 2, self.retry_delays_s[1])
        self._stop.wait(delay)

    def _ensure_schema(self) -> bool:
        """Create or upgrade the tables, retrying while the database is down; False: stopped."""
        while not self._stop.is_set():
            try:
                store.create_schema(self.engine)
                self._delay_s = self.retry_delays_s[0]
                return True
            except SQLAlchemyError as exc:
                self.stats.db_errors += 1
                metrics.SINK_DB_ERRORS.inc()
                log.warning("database unavailable (%s); retrying", _first_line(exc))
                self._back_off()
        return False

    @staticmethod
    def _commit(consumer: Consumer, records: Sequence[RawRecord]) -> None:
        """Commit the batch's offsets; a failure only means a replay (the writes absorb it)."""
        try:
            consumer.commit(DecisionSink._offsets(records))
        except ClientError as exc:
            log.warning("offset commit failed (%s); the batch may be read again", exc)

    # ------------------------------------------------------------------ one batch

    def _parse(self, records: Sequence[RawRecord]) -> _Batch:
        """The batch's parsed items, and quarantine rows for the records that do not parse."""
        batch = _Batch()
        for m in records:
            kind = self._kinds.get(m.topic, "unknown")
            batch.read[kind] += 1
            try:
                if m.error is not None:  # our client could not decode it: keep what it said
                    raise UndecodableRecordError(m.error)
                batch.items.append(_Item(m, kind, _parse_value(kind, m.value or b"")))
            except (ValueError, ValidationError) as exc:
                batch.bad[kind] += 1
                if kind == "events" and m.error is None:  # the worker dead-lettered it
                    log.warning("skipping bad event %s: %s", _where(m), _first_line(exc))
                else:
                    batch.rejects.append(_quarantined(m, kind, "parse", exc))
        return batch

    def _land(self, records: Sequence[RawRecord]) -> bool:
        """Write a batch in one transaction; False (retry the batch) when the store is down.

        Records the store refuses for their content, and records that do not parse, go to
        the quarantine table in the same transaction; the rest of the batch lands.
        """
        batch = self._parse(records)
        rejects = list(batch.rejects)
        try:
            with store.transaction(self.engine) as conn:
                written, refused = _land_isolating(conn, batch.items)
                rejects += [_quarantined(i.record, i.kind, "store", exc) for i, exc in refused]
                store.write_quarantine(conn, rejects)
        except Exception as exc:
            if not (_is_outage(exc) or is_data_error(exc)):
                raise  # a bug, neither the data nor the database: fail loudly
            # a data error here came at COMMIT or from the quarantine row: nothing to isolate
            self.stats.db_errors += 1
            metrics.SINK_DB_ERRORS.inc()
            log.warning(
                "the store could not take the batch, %d records will be retried: %s: %s",
                len(records),
                type(exc).__name__,
                _first_line(exc),
            )
            return False
        self._count(batch, written, refused, rejects)
        return True

    def _count(
        self,
        batch: _Batch,
        written: Counter[str],
        refused: list[tuple[_Item, BaseException]],
        rejects: list[store.QuarantinedRecord],
    ) -> None:
        """Stats, metrics and one log line per quarantined record, once a batch landed."""
        self.stats.read.update(batch.read)
        self.stats.bad.update(batch.bad)
        self.stats.refused.update(item.kind for item, _exc in refused)
        for q in rejects:
            self.stats.quarantined[q.kind] += 1
            metrics.SINK_QUARANTINED.labels(q.kind, q.stage, q.error_class).inc()
            log.error(
                "quarantined %s record %s[%d]@%d (%s): %s: %s",
                q.kind,
                q.source_topic,
                q.source_partition,
                q.source_offset,
                q.stage,
                q.error_class,
                q.error[:300],
            )
        self.stats.written.update({k: v for k, v in written.items() if v})
        self.stats.batches += 1

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


# ---------------------------------------------------------------------- landing records


def _parse_value(kind: str, raw: bytes) -> _Value:
    """The record of a topic kind (raises ``ValueError`` / ``ValidationError``)."""
    if kind == "events":
        return parse_event(raw, _MAX_EVENT_BYTES)
    if kind in ("decisions", "shadow"):
        return Decision.model_validate_json(raw)
    if kind == "dlq":
        return DeadLetter.model_validate_json(raw)
    if kind == "outcomes":
        return Outcome.model_validate_json(raw)
    raise ValueError(f"record of unknown kind {kind!r}")


def _write_items(conn: Connection, items: Sequence[_Item]) -> Counter[str]:
    """Write items of any kinds (idempotent); rows newly written per kind."""
    by_kind: dict[str, list[_Value]] = {k: [] for k in _KINDS}
    for item in items:
        by_kind[item.kind].append(item.value)
    events = [v for v in by_kind["events"] if isinstance(v, Event)]
    decisions = [v for v in by_kind["decisions"] if isinstance(v, Decision)]
    shadow = [v for v in by_kind["shadow"] if isinstance(v, Decision)]
    dlq = [v for v in by_kind["dlq"] if isinstance(v, DeadLetter)]
    outcomes = [v for v in by_kind["outcomes"] if isinstance(v, Outcome)]
    return Counter(
        {
            "events": store.write_events(conn, events),
            "decisions": store.write_decisions(conn, decisions),
            "shadow": store.write_decisions(conn, shadow, shadow=True),
            "dlq": store.write_dead_letters(conn, dlq),
            "outcomes": store.write_outcomes(conn, outcomes),
        }
    )


def _land_isolating(
    conn: Connection, items: Sequence[_Item]
) -> tuple[Counter[str], list[tuple[_Item, BaseException]]]:
    """Write ``items`` in a SAVEPOINT; on a data error, halve and retry each half the same way.

    Returns the rows written per kind and the items the database refused, each with its
    error. A batch with one bad record costs about 2·log2(n) savepoints, not n. An outage
    error propagates (the caller's transaction is then rolled back and retried whole).
    """
    if not items:
        return Counter(), []
    try:
        with conn.begin_nested():
            return _write_items(conn, items), []
    except Exception as exc:
        if not is_data_error(exc):
            raise
        if len(items) == 1:
            return Counter(), [(items[0], exc)]
    half = len(items) // 2
    written_a, refused_a = _land_isolating(conn, items[:half])
    written_b, refused_b = _land_isolating(conn, items[half:])
    return written_a + written_b, refused_a + refused_b


_CREDENTIALS = re.compile(r"(://[^:/@\s]+):[^@\s]*@")


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0][:300] if text.strip() else type(exc).__name__


def _reason(exc: BaseException) -> tuple[str, str]:
    """The error class and a message for the quarantine: the driver's own error (SQLSTATE,
    message, detail) without SQLAlchemy's statement and parameters, credentials masked, NULs
    and lone surrogates escaped, at most ``_MAX_ERROR_CHARS`` characters."""
    cause: BaseException = exc
    if isinstance(exc, StatementError) and isinstance(exc.orig, BaseException):
        cause = exc.orig
    lines = [
        line.strip()
        for line in str(cause).splitlines()
        if line.strip() and not line.strip().startswith("For further information")
    ]
    detail = getattr(getattr(cause, "diag", None), "message_detail", None)  # psycopg
    if isinstance(detail, str) and detail.strip() and detail.strip() not in lines:
        lines.insert(1, detail.strip())
    message = " | ".join(lines[:3]) or type(cause).__name__
    sqlstate = getattr(cause, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate:
        message = f"[{sqlstate}] {message}"
    message = _CREDENTIALS.sub(r"\1:***@", message).replace("\x00", "\\x00")
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    return type(cause).__name__, message[:_MAX_ERROR_CHARS]


def _where(m: RawRecord) -> str:
    return f"{m.topic}[{m.partition}]@{m.offset}"


def _quarantined(
    m: RawRecord, kind: str, stage: _Stage, exc: BaseException
) -> store.QuarantinedRecord:
    error_class, error = _reason(exc)
    return store.QuarantinedRecord(
        source_topic=m.topic,
        source_partition=m.partition,
        source_offset=m.offset,
        kind=kind,
        stage=stage,
        error_class=error_class,
        error=error,
        source_key=m.key,
        raw=m.value,
        quarantined_at=datetime.now(UTC),
    )


@dataclass(frozen=True)
class QuarantineRetry:
    """What :func:`retry_quarantined` did: records that landed (and left the quarantine),
    and records still refused (kept, with their latest error)."""

    landed: int
    refused: int


def retry_quarantined(
    engine: Engine, kind: str | None = None, limit: int | None = None
) -> QuarantineRetry:
    """Land quarantined records again (after a fix: a wider column, a newer sink).

    One transaction: records that now parse and land are written and leave the quarantine;
    the others stay, with the error of this attempt (and their first quarantine time).
    An outage raises, changing nothing.
    """
    store.create_schema(engine)
    held = store.read_quarantine(engine, kind=kind, limit=limit)
    first_seen = {(q.source_topic, q.source_partition, q.source_offset): q for q in held}
    items: list[_Item] = []
    still: list[store.QuarantinedRecord] = []
    for q in held:
        m = RawRecord(q.source_topic, q.source_partition, q.source_offset, q.source_key, q.raw)
        try:
            items.append(_Item(m, q.kind, _parse_value(q.kind, q.raw or b"")))
        except (ValueError, ValidationError) as exc:
            still.append(_quarantined(m, q.kind, "parse", exc))
    with store.transaction(engine) as conn:
        _written, refused = _land_isolating(conn, items)
        still += [_quarantined(i.record, i.kind, "store", exc) for i, exc in refused]
        kept = [
            _replace_time(q, first_seen[(q.source_topic, q.source_partition, q.source_offset)])
            for q in still
        ]
        store.delete_quarantined(conn, first_seen)
        store.write_quarantine(conn, kept)
    return QuarantineRetry(landed=len(held) - len(kept), refused=len(kept))


def _replace_time(
    q: store.QuarantinedRecord, first: store.QuarantinedRecord
) -> store.QuarantinedRecord:
    return replace(q, quarantined_at=first.quarantined_at)


# ---------------------------------------------------------------------- signals


def stop_on_signals(
    sink: DecisionSink,
    grace_s: float | None = 10.0,
    exit_now: Callable[[int], object] = os._exit,
) -> Callable[[], None]:
    """Make SIGTERM and SIGINT stop ``sink``; returns a function restoring the old handlers.

    The first signal calls :meth:`DecisionSink.stop` (from a helper thread: setting the
    stop event inside a handler could deadlock on the event's own lock). If the sink has not
    returned ``grace_s`` later (say a database that stopped answering mid-write), the process
    exits with status 1; a second signal exits at once with 128 + its number. Nothing is lost
    either way: offsets are committed only after the rows, so the batch is re-read. Call from
    the main thread.
    """
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    timers: list[threading.Timer] = []
    signalled = False  # a plain flag: no lock a handler could re-enter

    def expire() -> None:
        log.error("sink did not stop within %.0f s of the signal; exiting now", grace_s)
        exit_now(1)

    def handle(signum: int, _frame: FrameType | None) -> None:
        nonlocal signalled
        if signalled:
            exit_now(128 + signum)
            return
        signalled = True
        log.warning("%s: stopping the sink", signal.Signals(signum).name)
        threading.Thread(target=sink.stop, name="sink-stop", daemon=True).start()
        if grace_s is not None:
            timer = threading.Timer(grace_s, expire)
            timer.daemon = True
            timer.start()
            timers.append(timer)

    for sig in previous:
        signal.signal(sig, handle)

    def restore() -> None:
        for timer in timers:
            timer.cancel()
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


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
