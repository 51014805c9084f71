"""The decision store: events, decisions, outcomes and dead letters in one SQL database.

SQLAlchemy Core on any URL; PostgreSQL (the local stack) and SQLite (the embedded default) get
native ``INSERT .. ON CONFLICT DO NOTHING``, so every write is idempotent on its key
(``event_id``; a dead letter's source topic/partition/offset) and replaying a Kafka topic into
the store is harmless. Readers return pandas frames for the training and evaluation code.

``quarantine`` keeps the Kafka records the sink could not land (a value the database refused,
or one that did not parse), raw bytes and all, keyed by their source topic/partition/offset,
so that an operator can inspect and re-land them (``decisionflow sink quarantine``).

A test or a tenant can isolate its tables in a PostgreSQL schema without code:
``postgresql+psycopg://.../db?options=-csearch_path%3Dmy_schema``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    func,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from decisioning.contracts import DeadLetter, Decision, Event, Outcome
from models.data import features_from_records
from models.spec import FeatureSpec

__all__ = [
    "QuarantinedRecord",
    "Store",
    "create_schema",
    "decisions_with_outcomes",
    "delete_quarantined",
    "labelled_frame",
    "make_engine",
    "metadata",
    "quarantine_summary",
    "read_quarantine",
    "recent_features",
    "row_counts",
    "transaction",
    "write_dead_letters",
    "write_decisions",
    "write_events",
    "write_outcomes",
    "write_quarantine",
]

_JSON = JSON().with_variant(JSONB(), "postgresql")
_TS = DateTime(timezone=True)

metadata = MetaData()

events = Table(
    "events",
    metadata,
    Column("event_id", String(128), primary_key=True),
    Column("entity_id", String(256), nullable=False, index=True),
    Column("event_type", String(128), nullable=False),
    Column("event_time", _TS, nullable=False, index=True),
    Column("features", _JSON, nullable=False),
    Column("producer", String(128)),
)


def _decision_table(name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("event_id", String(128), primary_key=True),
        Column("entity_id", String(256), nullable=False),
        Column("decision", String(128), nullable=False),
        Column("score", Float),
        Column("threshold", Float),
        Column("reasons", _JSON, nullable=False),
        Column("reason_method", String(64)),  # added after the first release (see _UPGRADES)
        Column("rule", String(256)),
        Column("segment", String(256)),
        Column("model_name", String(128), nullable=False),
        Column("model_version", Integer),
        Column("policy_name", String(128), nullable=False),
        Column("policy_version", String(128), nullable=False),
        Column("arm", String(32), nullable=False),
        Column("shadow", Boolean, nullable=False),
        Column("feature_hash", String(64), nullable=False),
        Column("event_time", _TS, nullable=False),
        Column("decided_at", _TS, nullable=False, index=True),
        Column("latency_ms", Float, nullable=False),
    )


decisions = _decision_table("decisions")
shadow_decisions = _decision_table("shadow_decisions")

outcomes = Table(
    "outcomes",
    metadata,
    Column("event_id", String(128), primary_key=True),
    Column("entity_id", String(256), nullable=False),
    Column("label", String(128), nullable=False),
    Column("observed_at", _TS, nullable=False, index=True),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("source_topic", String(249), primary_key=True),
    Column("source_partition", Integer, primary_key=True),
    Column("source_offset", BigInteger, primary_key=True),  # widened in place (_WIDENED)
    Column("reason", String(128), nullable=False),
    Column("stage", String(32), nullable=False),
    Column("error_class", String(128), nullable=False),
    Column("error", Text, nullable=False),
    Column("source_key", Text),
    Column("raw", Text, nullable=False),
    Column("raw_size", Integer, nullable=False),
    Column("failed_at", _TS, nullable=False),
)

# Kafka records the sink could not land. Raw bytes (BYTEA / BLOB) so that a value PostgreSQL
# refused as text (a NUL, bad UTF-8) can still be kept; keyed by source position (idempotent).
quarantine = Table(
    "quarantine",
    metadata,
    Column("source_topic", String(249), primary_key=True),
    Column("source_partition", Integer, primary_key=True),
    Column("source_offset", BigInteger, primary_key=True),
    Column("kind", String(32), nullable=False),  # events, decisions, shadow, dlq, outcomes
    Column("stage", String(16), nullable=False),  # parse (not a valid record) | store (refused)
    Column("error_class", String(128), nullable=False),
    Column("error", Text, nullable=False),
    Column("source_key", LargeBinary),
    Column("raw", LargeBinary),  # NULL: the record had no value (a tombstone)
    Column("raw_size", Integer, nullable=False),
    Column("quarantined_at", _TS, nullable=False, index=True),
)


class Store:
    """Names of the tables (for callers that want Core access)."""

    events = events
    decisions = decisions
    shadow_decisions = shadow_decisions
    outcomes = outcomes
    dead_letters = dead_letters
    quarantine = quarantine


@dataclass(frozen=True, slots=True)
class QuarantinedRecord:
    """A Kafka record the sink could not land, and why (a row of ``quarantine``)."""

    source_topic: str
    source_partition: int
    source_offset: int
    kind: str
    stage: str
    error_class: str
    error: str
    source_key: bytes | None
    raw: bytes | None
    quarantined_at: datetime


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets a busy timeout and its parent folder created."""
    if url.startswith("sqlite"):
        from pathlib import Path

        from sqlalchemy.engine import make_url

        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        return create_engine(url, connect_args={"timeout": 30})
    if url.startswith("postgresql") and "connect_timeout" not in url:
        # a blackholed server must not hold a caller (the sink's stop, a DAG task) for minutes
        return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})
    return create_engine(url, pool_pre_ping=True)


# Nullable columns added after a table's first release: ``create_schema`` adds them in place.
_UPGRADES: tuple[tuple[Table, str], ...] = (
    (decisions, "reason_method"),
    (shadow_decisions, "reason_method"),
)


# Integer columns that became BIGINT after a table's first release (a Kafka offset passes
# 2**31 on a busy partition): ``create_schema`` widens them in place on PostgreSQL (SQLite's
# INTEGER holds 64 bits already).
_WIDENED: tuple[tuple[Table, str], ...] = ((dead_letters, "source_offset"),)


def _columns(engine: Engine, table: Table) -> dict[str, Any]:
    """The table's columns as the database has them: name -> SQLAlchemy type."""
    return {c["name"]: c["type"] for c in inspect(engine).get_columns(table.name)}


def _widen(engine: Engine, table: Table, name: str) -> None:
    """``ALTER COLUMN .. TYPE BIGINT`` when the column is narrower (PostgreSQL only)."""
    if engine.dialect.name != "postgresql":
        return
    if isinstance(_columns(engine, table).get(name), BigInteger):
        return
    quote = engine.dialect.identifier_preparer
    ddl = (
        f"ALTER TABLE {quote.format_table(table)} "
        f"ALTER COLUMN {quote.format_column(table.c[name])} TYPE BIGINT"
    )
    with engine.begin() as conn:
        conn.execute(text(ddl))


def _add_column(engine: Engine, table: Table, name: str) -> None:
    """``ALTER TABLE .. ADD COLUMN`` for a nullable column; a racing process may win (fine)."""
    column, dialect = table.c[name], engine.dialect
    quote = dialect.identifier_preparer
    guard = "IF NOT EXISTS " if dialect.name == "postgresql" else ""
    ddl = (
        f"ALTER TABLE {quote.format_table(table)} ADD COLUMN {guard}"
        f"{quote.format_column(column)} {column.type.compile(dialect=dialect)}"
    )
    try:
        with engine.begin() as conn:
            conn.execute(text(ddl))
    except DBAPIError:  # SQLite has no IF NOT EXISTS: "duplicate column" if another won
        if name not in _columns(engine, table):
            raise


def create_schema(engine: Engine) -> None:
    """Create every missing table, add columns newer than an existing table and widen the
    columns that grew (idempotent)."""
    metadata.create_all(engine, checkfirst=True)
    for table, name in _UPGRADES:
        if name not in _columns(engine, table):
            _add_column(engine, table, name)
    for table, name in _WIDENED:
        _widen(engine, table, name)


# ------------------------------------------------------------------------------ writing


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that commits on exit (rolls back on error).

    Unlike ``engine.begin()`` it keeps SAVEPOINTs (``conn.begin_nested()``) nested on SQLite
    too: pysqlite opens its transaction only before DML, so a first SAVEPOINT would start one
    of its own and its RELEASE would commit early. Here SQLite gets an explicit ``BEGIN``.
    """
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            dbapi = conn.connection.dbapi_connection
            if dbapi is not None and not getattr(dbapi, "in_transaction", True):
                conn.exec_driver_sql("BEGIN")
        yield conn


def _insert_ignore(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert ``rows``, skipping those whose key already exists; returns rows inserted."""
    if not rows:
        return 0
    name = conn.dialect.name
    if name == "postgresql":
        stmt: Any = postgresql.insert(table).on_conflict_do_nothing()
    elif name == "sqlite":
        stmt = sqlite.insert(table).on_conflict_do_nothing()
    else:  # any other dialect: skip the keys that are there, then plain insert
        keys = [c.name for c in table.primary_key.columns]
        existing = {tuple(r) for r in conn.execute(select(*[table.c[k] for k in keys])).all()}
        rows = [r for r in rows if tuple(r[k] for k in keys) not in existing]
        if not rows:
            return 0
        stmt = insert(table)
    first_key = next(iter(table.primary_key.columns))
    result = conn.execute(stmt.returning(first_key), [dict(r) for r in rows])
    return len(result.all())


def _count(conn: Connection, table: Table) -> int:
    return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _dedupe(rows: Iterable[dict[str, Any]], *keys: str) -> list[dict[str, Any]]:
    seen: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        seen.setdefault(tuple(row[k] for k in keys), row)
    return list(seen.values())


def write_events(conn: Connection, items: Iterable[Event]) -> int:
    """Land events (the features decided on); returns how many were new."""
    rows = _dedupe(
        (
            {
                "event_id": e.event_id,
                "entity_id": e.entity_id,
                "event_type": e.event_type,
                "event_time": e.event_time,
                "features": dict(e.features),
                "producer": e.producer,
            }
            for e in items
        ),
        "event_id",
    )
    return _insert_ignore(conn, events, rows)


def write_decisions(conn: Connection, items: Iterable[Decision], shadow: bool = False) -> int:
    """Land decisions (``shadow=True``: into ``shadow_decisions``); returns how many were new."""
    rows = _dedupe(
        (
            {
                **d.model_dump(mode="python", exclude={"schema_version", "reasons"}),
                "reasons": [r.model_dump(mode="json") for r in d.reasons],
            }
            for d in items
        ),
        "event_id",
    )
    return _insert_ignore(conn, shadow_decisions if shadow else decisions, rows)


def write_outcomes(conn: Connection, items: Iterable[Outcome]) -> int:
    """Land outcomes (labels); returns how many were new."""
    rows = _dedupe(
        (o.model_dump(mode="python", exclude={"schema_version"}) for o in items), "event_id"
    )
    return _insert_ignore(conn, outcomes, rows)


def write_dead_letters(conn: Connection, items: Iterable[DeadLetter]) -> int:
    """Land dead letters (keyed by their source position); returns how many were new."""
    rows = _dedupe(
        (
            {
                "source_topic": d.source_topic,
                "source_partition": d.source_partition,
                "source_offset": d.source_offset,
                "reason": d.reason,
                "stage": d.stage,
                "error_class": d.error_class,
                "error": d.error_message,
                "source_key": d.source_key,
                "raw": d.raw,
                "raw_size": d.raw_size,
                "failed_at": d.failed_at,
            }
            for d in items
        ),
        "source_topic",
        "source_partition",
        "source_offset",
    )
    return _insert_ignore(conn, dead_letters, rows)


def write_quarantine(conn: Connection, items: Iterable[QuarantinedRecord]) -> int:
    """Keep records the sink could not land (keyed by source position); returns how many new."""
    rows = _dedupe(
        (
            {
                "source_topic": q.source_topic,
                "source_partition": q.source_partition,
                "source_offset": q.source_offset,
                "kind": q.kind,
                "stage": q.stage,
                "error_class": q.error_class[:128],
                "error": q.error,
                "source_key": q.source_key,
                "raw": q.raw,
                "raw_size": len(q.raw or b""),
                "quarantined_at": q.quarantined_at,
            }
            for q in items
        ),
        "source_topic",
        "source_partition",
        "source_offset",
    )
    return _insert_ignore(conn, quarantine, rows)


def delete_quarantined(conn: Connection, keys: Iterable[tuple[str, int, int]]) -> int:
    """Remove quarantined records by ``(topic, partition, offset)``; returns how many went."""
    removed = 0
    for topic, partition, offset in keys:
        result = conn.execute(
            delete(quarantine).where(
                quarantine.c.source_topic == topic,
                quarantine.c.source_partition == partition,
                quarantine.c.source_offset == offset,
            )
        )
        removed += result.rowcount
    return removed


def row_counts(engine: Engine) -> dict[str, int]:
    """Rows per table (for logs, tests and the sink's summary)."""
    with engine.connect() as conn:
        return {t.name: _count(conn, t) for t in metadata.sorted_tables}


# ------------------------------------------------------------------------------ reading


def _has_quarantine(engine: Engine) -> bool:
    """False on a store no sink of this version has upgraded yet (nothing quarantined)."""
    return inspect(engine).has_table(quarantine.name)


def read_quarantine(
    engine: Engine, kind: str | None = None, limit: int | None = None
) -> list[QuarantinedRecord]:
    """Quarantined records, newest first (``kind``: only records of that topic kind)."""
    if not _has_quarantine(engine):
        return []
    stmt = select(quarantine).order_by(
        quarantine.c.quarantined_at.desc(),
        quarantine.c.source_topic,
        quarantine.c.source_partition,
        quarantine.c.source_offset.desc(),
    )
    if kind is not None:
        stmt = stmt.where(quarantine.c.kind == kind)
    if limit is not None:
        stmt = stmt.limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return [
        QuarantinedRecord(
            source_topic=r.source_topic,
            source_partition=r.source_partition,
            source_offset=r.source_offset,
            kind=r.kind,
            stage=r.stage,
            error_class=r.error_class,
            error=r.error,
            source_key=None if r.source_key is None else bytes(r.source_key),
            raw=None if r.raw is None else bytes(r.raw),
            quarantined_at=_utc(r.quarantined_at) or r.quarantined_at,
        )
        for r in rows
    ]


def quarantine_summary(engine: Engine) -> pd.DataFrame:
    """Quarantined records per kind, stage and error class: count, first and last time.

    Columns ``kind, stage, error_class, count, first, last``, the largest groups first.
    """
    columns = ["kind", "stage", "error_class", "count", "first", "last"]
    if not _has_quarantine(engine):
        return pd.DataFrame(columns=columns)
    q = quarantine.c
    stmt = (
        select(
            q.kind,
            q.stage,
            q.error_class,
            func.count().label("count"),
            func.min(q.quarantined_at).label("first"),
            func.max(q.quarantined_at).label("last"),
        )
        .group_by(q.kind, q.stage, q.error_class)
        .order_by(func.count().desc(), q.kind, q.stage, q.error_class)
    )
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(stmt).all()]
    frame = pd.DataFrame.from_records(rows, columns=columns)
    for col in ("first", "last"):
        frame[col] = pd.to_datetime(frame[col].map(_utc), utc=True)
    return frame


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _features(raw: Any) -> dict[str, Any]:
    if isinstance(raw, str):  # a driver that hands JSON back as text
        parsed: dict[str, Any] = json.loads(raw)
        return parsed
    return dict(raw)


def _typed_features(records: list[dict[str, Any]], spec: FeatureSpec) -> pd.DataFrame:
    frame = features_from_records(records, spec)
    for col in spec.columns:
        if col.type == "numeric":
            frame[col.name] = pd.to_numeric(frame[col.name], errors="coerce").astype("float64")
    return frame


def labelled_frame(
    engine: Engine,
    spec: FeatureSpec,
    since: datetime | None = None,
    model_name: str | None = None,
) -> pd.DataFrame:
    """Outcomes joined to the features that were decided on, shaped like ``load_frame``.

    Columns: the entity key, the spec's features (in spec order), the label column (values as
    observed, e.g. good/bad), then ``event_id`` and ``event_time``. ``since`` keeps events at or
    after that time; ``model_name`` keeps only events one flow decided (its decisions name its
    model), so one flow's training data never takes in another's. Empty frame (same columns)
    when nothing is labelled yet.
    """
    joined = events.join(outcomes, events.c.event_id == outcomes.c.event_id)
    stmt = (
        select(
            events.c.event_id,
            events.c.entity_id,
            events.c.event_time,
            events.c.features,
            outcomes.c.label,
        )
        .select_from(joined)
        .order_by(events.c.event_time, events.c.event_id)
    )
    if model_name is not None:
        decided = select(decisions.c.event_id).where(decisions.c.model_name == model_name)
        stmt = stmt.where(events.c.event_id.in_(decided))
    if since is not None:
        stmt = stmt.where(events.c.event_time >= _utc(since))
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    frame = _typed_features([_features(r.features) for r in rows], spec)
    frame.insert(0, spec.entity_key.column, pd.Series([r.entity_id for r in rows], dtype=object))
    frame[spec.label.column] = pd.Series([r.label for r in rows], dtype=object)
    frame["event_id"] = pd.Series([r.event_id for r in rows], dtype=object)
    times: list[Any] = [_utc(r.event_time) for r in rows]
    frame["event_time"] = pd.to_datetime(pd.Series(times, dtype=object), utc=True)
    return frame


_DECISION_COLUMNS = [c.name for c in decisions.columns if c.name != "reasons"]


def decisions_with_outcomes(
    engine: Engine,
    since: datetime | None = None,
    include_shadow: bool = False,
    model_name: str | None = None,
) -> pd.DataFrame:
    """Every decision (decided at or after ``since``) with its outcome label, if any.

    Columns: the decision fields (no reasons), ``label`` (None when no outcome yet) and
    ``observed_at``. ``include_shadow`` adds shadow decisions (their ``shadow`` column is True);
    ``model_name`` keeps one flow's decisions.
    """
    frames = []
    tables = [decisions, shadow_decisions] if include_shadow else [decisions]
    with engine.connect() as conn:
        for table in tables:
            stmt = select(
                *[table.c[c] for c in _DECISION_COLUMNS], outcomes.c.label, outcomes.c.observed_at
            ).select_from(table.outerjoin(outcomes, table.c.event_id == outcomes.c.event_id))
            if since is not None:
                stmt = stmt.where(table.c.decided_at >= _utc(since))
            if model_name is not None:
                stmt = stmt.where(table.c.model_name == model_name)
            rows = conn.execute(stmt).all()
            frames.append(
                pd.DataFrame.from_records(
                    [tuple(r) for r in rows], columns=[*_DECISION_COLUMNS, "label", "observed_at"]
                )
            )
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    for col in ("event_time", "decided_at", "observed_at"):
        frame[col] = pd.to_datetime(frame[col].map(_utc), utc=True)
    frame["model_version"] = frame["model_version"].astype("Int64")
    frame["score"] = frame["score"].astype("float64")
    return frame


def recent_features(
    engine: Engine,
    since: datetime | None = None,
    spec: FeatureSpec | None = None,
    model_name: str | None = None,
) -> pd.DataFrame:
    """Features of events at or after ``since`` (all features, or the spec's columns typed);
    ``model_name`` keeps the events one flow decided."""
    stmt = select(events.c.features).order_by(events.c.event_time)
    if model_name is not None:
        decided = select(decisions.c.event_id).where(decisions.c.model_name == model_name)
        stmt = stmt.where(events.c.event_id.in_(decided))
    if since is not None:
        stmt = stmt.where(events.c.event_time >= _utc(since))
    with engine.connect() as conn:
        records = [_features(r.features) for r in conn.execute(stmt).all()]
    if spec is not None:
        return _typed_features(records, spec)
    return pd.DataFrame.from_records(records)
