"""The store as the API's fallback memory: decisions older than the in-memory index, or made
before this process started (the sink lands them there)."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from decisioning.contracts import Decision, encode_record

__all__ = ["DecisionStore", "StoreLookup", "decision_from_row"]

log = logging.getLogger(__name__)
_WARN_EVERY_S = 60.0


class DecisionStore(Protocol):
    """Looks a decision up by event id (blocking: the API calls it on a worker thread)."""

    def decision(self, event_id: str) -> bytes | None:
        """The decision's JSON, or None when the store has none (or cannot be read)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def _aware(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:  # SQLite keeps no offset
        return value.replace(tzinfo=UTC)
    return value


def decision_from_row(row: dict[str, Any]) -> bytes:
    """A ``decisions`` table row as the decision record's JSON (as on the decisions topic)."""
    fields = {name: _aware(value) for name, value in row.items() if name in Decision.model_fields}
    return encode_record(Decision.model_validate(fields))


class StoreLookup:
    """:class:`DecisionStore` over the SQL store (``storage.store``'s ``decisions`` table).

    A store that cannot be read (down, no table yet) is a miss, logged at most once a minute:
    the API keeps answering from Kafka.
    """

    def __init__(self, url: str) -> None:
        from storage.store import make_engine

        self._engine = make_engine(url)
        self._warned_at = -_WARN_EVERY_S

    def decision(self, event_id: str) -> bytes | None:
        from storage.store import Store

        table = Store.decisions
        try:
            with self._engine.connect() as conn:
                row = conn.execute(select(table).where(table.c.event_id == event_id)).first()
        except SQLAlchemyError as exc:
            now = time.monotonic()
            if now - self._warned_at >= _WARN_EVERY_S:
                self._warned_at = now
                log.warning("decision store not readable (%s): answering from Kafka only",
                            type(exc).__name__)  # fmt: skip
            return None
        return None if row is None else decision_from_row(dict(row._mapping))

    def close(self) -> None:
        self._engine.dispose()
