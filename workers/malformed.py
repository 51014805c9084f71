"""A corpus of malformed events for drills, demos and tests: each must land in the DLQ."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

__all__ = ["malformed_corpus"]


def _event(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "schema_version": 1,
        "event_id": uuid.uuid4().hex,
        "entity_id": "bad-" + uuid.uuid4().hex[:8],
        "event_type": "credit_application",
        "event_time": datetime.now(UTC).isoformat(),
        "features": {"Amount": 1000, "Home": "rent"},
    }
    base.update(overrides)
    return base


def malformed_corpus(max_message_bytes: int = 64 * 1024) -> list[tuple[str, bytes]]:
    """(expected DLQ reason, raw bytes) pairs, one per kind of bad input."""
    missing = _event()
    del missing["entity_id"]
    return [
        ("invalid_json", b'{"schema_version": 1, "event_id": '),
        ("not_utf8", b"\xff\xfe\xfa not utf-8 \x80"),
        ("not_object", b"[1, 2, 3]"),
        ("validation", json.dumps(missing).encode()),
        ("validation", json.dumps(_event(surprise="extra field")).encode()),
        ("validation", json.dumps(_event(event_time="yesterday")).encode()),
        ("feature_type", json.dumps(_event(features={"Amount": "a lot"})).encode()),
        ("unknown_feature", json.dumps(_event(features={"ShoeSize": 44})).encode()),
        ("non_finite", json.dumps(_event(features={"Amount": float("nan")})).encode()),
        ("non_finite", json.dumps(_event(features={"Income": float("inf")})).encode()),
        ("schema_version", json.dumps(_event(schema_version=99)).encode()),
        # out of the spec's event_time window (any spec: the window has defaults)
        ("out_of_range", json.dumps(_event(event_time="9999-12-31T00:00:00+00:00")).encode()),
        ("out_of_range", json.dumps(_event(event_time="0001-01-01T00:00:00+00:00")).encode()),
        ("oversize", json.dumps(_event(pad="x" * (max_message_bytes + 10))).encode()),
        ("invalid_json", b""),
    ]
