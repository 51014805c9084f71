"""Replay: re-decide historical events through another model and/or policy, report changes.

Events come from Kafka retention (the ``events`` topic from the beginning) and the recorded
decisions from the ``decisions`` topic (read_committed). With the recorded model versions and
the same policy, a replay reproduces every decision exactly (the audit check); with a challenger
policy or model it shows what would change.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd
from kafka import KafkaConsumer

from decisioning.audit import diff_decisions
from decisioning.policy import Policy
from workers.engine import DecisionEngine, RawRecord, ScoringModel
from workers.kafka_python import DecodingPoller

__all__ = ["ReplayResult", "read_topic", "replay_records"]

COMPARED = ("decision", "score", "threshold", "rule", "model_version", "feature_hash", "reasons")


@dataclass
class ReplayResult:
    """The replayed decisions, the change table and how many decisions were reproduced."""

    replayed: pd.DataFrame
    changes: pd.DataFrame
    identical: int
    compared: int


def read_topic(
    bootstrap: str | list[str], topic: str, idle_ms: int = 2000, **client: Any
) -> list[RawRecord]:
    """Every committed record of ``topic`` still in retention (no consumer group), read until
    nothing came for ``idle_ms``.

    A record the client cannot decode is returned with ``error`` set and no value (callers skip
    it like any record without a value), and reading goes on past it; other client failures
    raise :class:`~workers.kafka_client.ClientError`.
    """
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
        **client,
    )
    poller = DecodingPoller(consumer)
    out: list[RawRecord] = []
    try:
        last = time.monotonic()
        while (left_ms := idle_ms - (time.monotonic() - last) * 1000.0) > 0:
            records = poller.poll(min(int(left_ms) + 1, 200), 10_000)
            if records:
                out += records
                last = time.monotonic()
    finally:
        consumer.close()
    return out


def replay_records(
    events: Iterable[RawRecord],
    recorded: pd.DataFrame,
    policy: Policy,
    load_model: Callable[[int | None], ScoringModel],
    *,
    model_ref: str = "recorded",
    by: tuple[str, ...] = (),
) -> ReplayResult:
    """Re-decide ``events`` that have a recorded decision.

    ``model_ref`` ``recorded`` uses, per event, the model version that decided it (the audit
    replay); anything else is passed to ``load_model(None)`` once (e.g. the challenger).
    """
    recorded = recorded.drop_duplicates("event_id", keep="last").set_index("event_id")
    wanted: dict[int | None, list[RawRecord]] = {}
    for rec in events:
        try:
            event_id = json.loads(rec.value or b"{}").get("event_id")
        except (ValueError, AttributeError):
            continue  # dead-lettered at the time: nothing to compare
        if event_id not in recorded.index:
            continue
        version: Any = recorded.at[event_id, "model_version"] if model_ref == "recorded" else None
        key = None if version is None or pd.isna(version) else int(version)
        wanted.setdefault(key, []).append(rec)
    frames = []
    for version, recs in wanted.items():
        model = load_model(version)
        engine = DecisionEngine(model, policy, model.spec)
        try:
            out = engine.process(recs)
        finally:
            engine.close()
        frames.append(pd.DataFrame([d.model_dump(mode="json") for d in out.decisions]))
    replayed = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    before = recorded.reset_index()
    if replayed.empty:
        return ReplayResult(replayed, pd.DataFrame(), 0, 0)
    before = before[before["event_id"].isin(replayed["event_id"])]
    changes = diff_decisions(before, replayed, by=list(by))
    merged = before.merge(replayed, on="event_id", suffixes=("_before", "_after"))
    same = pd.Series(True, index=merged.index)
    for col in COMPARED:
        a, b = merged[f"{col}_before"], merged[f"{col}_after"]
        if col == "reasons":
            a, b = a.map(json.dumps), b.map(json.dumps)
        same &= (a == b) | (a.isna() & b.isna())
    return ReplayResult(replayed, changes, int(same.sum()), len(merged))


def decisions_from_records(records: Iterable[RawRecord]) -> pd.DataFrame:
    """Recorded decision records (JSON values) as a frame."""
    rows = [json.loads(r.value) for r in records if r.value]
    return pd.DataFrame(rows)


def from_store(url: str) -> tuple[list[RawRecord], pd.DataFrame]:
    """Events (rebuilt as raw JSON records) and recorded decisions from the store."""
    import sqlalchemy as sa

    from storage import store

    engine = store.make_engine(url)
    try:
        with engine.connect() as conn:
            events = conn.execute(sa.select(store.events)).mappings().all()
            recorded = pd.read_sql(sa.select(store.decisions), conn)
    finally:
        engine.dispose()
    raws = []
    for i, row in enumerate(events):
        payload = {
            "schema_version": 1,
            "event_id": row["event_id"],
            "entity_id": row["entity_id"],
            "event_type": row["event_type"],
            "event_time": pd.Timestamp(row["event_time"]).tz_localize(None).isoformat() + "Z",
            "features": row["features"],
        }
        raws.append(RawRecord("store", 0, i, None, json.dumps(payload).encode()))
    if not recorded.empty:
        recorded["reasons"] = recorded["reasons"].map(
            lambda r: json.loads(r) if isinstance(r, str) else r
        )
    return raws, recorded
