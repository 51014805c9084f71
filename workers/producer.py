"""Producing events: a small helper for producer teams, and dataset streaming for demos.

    from workers.producer import EventProducer
    with EventProducer("127.0.0.1:19092") as p:
        p.send(entity_id="app-000042", features={"Amount": 1200, "Home": "rent"})

Events are keyed by ``entity_id`` (one entity's events stay ordered on one partition) and
carry a fresh ``event_id`` (the idempotency key) unless you pass your own.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import pandas as pd
from kafka import KafkaProducer

__all__ = ["EventProducer", "event_payload", "events_from_frame"]


def event_payload(
    entity_id: str,
    features: Mapping[str, Any],
    *,
    event_id: str | None = None,
    event_type: str = "credit_application",
    event_time: datetime | None = None,
    producer: str | None = None,
) -> dict[str, Any]:
    """An event as the contract (docs/contracts/event.schema.json) wants it."""
    payload: dict[str, Any] = {
        "schema_version": 1,
        "event_id": event_id or uuid.uuid4().hex,
        "entity_id": entity_id,
        "event_type": event_type,
        "event_time": (event_time or datetime.now(UTC)).isoformat(),
        "features": dict(features),
    }
    if producer:
        payload["producer"] = producer
    return payload


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    return value


def events_from_frame(
    df: pd.DataFrame, feature_names: list[str], entity_key: str, id_prefix: str = ""
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event_id, features) pairs per row; missing values become null."""
    for entity_id, row in zip(
        df[entity_key].astype(str), df[feature_names].itertuples(index=False), strict=True
    ):
        feats = {name: _clean(v) for name, v in zip(feature_names, row, strict=True)}
        yield f"{id_prefix}{entity_id}", feats


class EventProducer:
    """Thin wrapper over KafkaProducer (idempotent, acks=all) that speaks the event contract."""

    def __init__(
        self, bootstrap_servers: str | list[str], topic: str = "events", **client_options: Any
    ) -> None:
        self.topic = topic
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            linger_ms=client_options.pop("linger_ms", 5),
            **client_options,
        )

    def send(self, entity_id: str, features: Mapping[str, Any], **fields: Any) -> str:
        """Send one event; returns its event_id."""
        payload = event_payload(entity_id, features, **fields)
        self.send_raw(entity_id, json.dumps(payload, allow_nan=False).encode())
        return str(payload["event_id"])

    def send_raw(self, key: str | None, value: bytes) -> None:
        """Send bytes as they are (for tests and malformed-event drills)."""
        self._producer.send(self.topic, key=key.encode() if key else None, value=value)

    def flush(self, timeout: float | None = None) -> None:
        """Block until every sent event is acknowledged."""
        self._producer.flush(timeout=timeout)

    def close(self) -> None:
        """Flush and close."""
        self._producer.flush()
        self._producer.close()

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


def pace(rate: float) -> Iterator[None]:
    """Yield at ``rate`` per second (open loop: a slow consumer does not slow the clock)."""
    start = time.perf_counter()
    n = 0
    while True:
        if rate > 0:
            wait = start + n / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        n += 1
        yield
