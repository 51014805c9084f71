"""Wire records of decisionflow and strict parsing of raw Kafka event bytes.

Every record carries ``schema_version`` (``Literal[1]``; an absent value means 1). Records are
frozen and reject unknown fields. ``python -m decisioning.contracts`` writes the JSON Schema and
an example of every record into ``docs/contracts/`` (see :mod:`decisioning.contract_files`).

``parse_event`` turns raw bytes into an :class:`Event` or raises one :class:`EventError` subclass
whose ``reason`` (a short, stable, machine-readable string) becomes the dead-letter reason and the
metric label.
"""

from __future__ import annotations

import base64
import json
import math
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, NoReturn

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

__all__ = [
    "DLQ_RAW_LIMIT",
    "SCHEMA_VERSION",
    "Arm",
    "DeadLetter",
    "Decision",
    "Event",
    "EventError",
    "EventValidationError",
    "FeatureValue",
    "InvalidJsonError",
    "NonFiniteError",
    "NotObjectError",
    "NotUtf8Error",
    "Outcome",
    "OversizeError",
    "Reason",
    "SchemaVersionError",
    "Stage",
    "dead_letter",
    "encode_record",
    "parse_event",
]

SCHEMA_VERSION: Literal[1] = 1
#: Most raw bytes a dead letter carries (base64 of the first DLQ_RAW_LIMIT bytes).
DLQ_RAW_LIMIT = 64 * 1024

_INT64_MAX = 2**63 - 1

FeatureValue = float | int | str | bool | None
"""One feature value on the wire: a JSON scalar. Floats must be finite."""

Arm = Literal["champion", "challenger"]
Stage = Literal["decode", "validate", "encode", "score", "decide"]

EventId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
EntityId = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=128)]
FeatureName = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = Field(
        default=1, description="Version of this record's contract; absent means 1."
    )


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


class Event(_Record):
    """A business event to decide on (value of a message on the ``events`` topic)."""

    event_id: EventId = Field(description="Idempotency key, unique per event (1..128 chars).")
    entity_id: EntityId = Field(description="The entity decided on; also the Kafka message key.")
    event_type: Name = Field(default="credit_application", description="Kind of event.")
    event_time: AwareDatetime = Field(
        description="When the event happened (ISO 8601 with offset; normalised to UTC)."
    )
    features: dict[FeatureName, FeatureValue] = Field(
        description="Feature name -> JSON scalar. Floats must be finite."
    )
    producer: Name | None = Field(default=None, description="Optional name of the producer.")

    @field_validator("event_time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return _to_utc(value)

    @field_validator("features")
    @classmethod
    def _finite(cls, value: dict[str, FeatureValue]) -> dict[str, FeatureValue]:
        for name, item in value.items():
            if isinstance(item, float) and not math.isfinite(item):
                raise ValueError(f"feature {name!r} is not a finite number ({item!r})")
            if isinstance(item, int) and not isinstance(item, bool) and abs(item) > _INT64_MAX:
                raise ValueError(f"feature {name!r} is an integer outside the 64-bit range")
        return value


class Reason(BaseModel):
    """One reason behind a decision: a hard rule that fired or a feature that raised the risk."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: Name = Field(description="Stable reason code, e.g. R01 or MODEL_UNAVAILABLE.")
    text: str = Field(description="Human-readable text of the code.")
    feature: str | None = Field(default=None, description="Feature behind the reason, if any.")
    contribution: FiniteFloat | None = Field(
        default=None, description="The feature's contribution to the risk score, if known."
    )


class Decision(_Record):
    """A decision on one event (value of a message on ``decisions`` / ``decisions.shadow``)."""

    event_id: EventId
    entity_id: EntityId
    decision: Name = Field(description="Policy decision name, e.g. approve/review/decline.")
    score: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)] | None = Field(
        description="Model risk score (probability of the positive class); null when the model "
        "was unavailable."
    )
    threshold: FiniteFloat | None = Field(
        description="The band edge the score was compared with; null when a rule or the fallback "
        "decided."
    )
    reasons: list[Reason] = Field(default_factory=list)
    rule: str | None = Field(default=None, description="Name of the hard rule that fired, if any.")
    segment: str | None = Field(
        default=None, description="Policy segment the entity falls in; null: default bands."
    )
    model_name: Name
    model_version: int | None = Field(description="Registry version; null if no model was used.")
    policy_name: Name
    policy_version: Name
    arm: Arm
    shadow: bool = Field(description="True for a shadow decision that is recorded, not acted on.")
    feature_hash: Sha256Hex = Field(
        description="sha256 hex of the canonical JSON of the features used."
    )
    event_time: AwareDatetime
    decided_at: AwareDatetime
    latency_ms: FiniteFloat = Field(description="decided_at - event_time in milliseconds.")

    @field_validator("event_time", "decided_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return _to_utc(value)


class Outcome(_Record):
    """A label observed later for an event (value of a message on ``outcomes``)."""

    event_id: EventId
    entity_id: EntityId
    label: Name = Field(description="Observed label, e.g. good or bad.")
    observed_at: AwareDatetime

    @field_validator("observed_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return _to_utc(value)


class DeadLetter(_Record):
    """A message that could not be processed (value of a message on the dead-letter topic)."""

    reason: Name = Field(description="Machine-readable reason, e.g. invalid_json, oversize.")
    error_class: Name
    error_message: str
    stage: Stage
    source_topic: Name
    source_partition: Annotated[int, Field(ge=0)]
    source_offset: Annotated[int, Field(ge=0)]
    source_key: str | None = Field(default=None, description="Kafka key of the message, if any.")
    raw: str = Field(description="base64 of the raw message bytes (at most DLQ_RAW_LIMIT bytes).")
    raw_size: Annotated[int, Field(ge=0)] = Field(description="Size of the original message.")
    raw_truncated: bool = Field(default=False, description="True when raw holds a prefix only.")
    failed_at: AwareDatetime

    @field_validator("failed_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return _to_utc(value)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class EventError(ValueError):
    """A raw event that cannot become an :class:`Event`; ``reason`` is a stable short label."""

    reason: ClassVar[str] = "invalid_event"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class OversizeError(EventError):
    """The raw message is larger than the configured maximum."""

    reason = "oversize"


class NotUtf8Error(EventError):
    """The raw message is not valid UTF-8."""

    reason = "not_utf8"


class InvalidJsonError(EventError):
    """The message is not strict JSON (syntax error, duplicate key, too deep)."""

    reason = "invalid_json"


class NonFiniteError(EventError):
    """The message holds NaN or an infinite number."""

    reason = "non_finite"


class NotObjectError(EventError):
    """The JSON document is not an object."""

    reason = "not_object"


class SchemaVersionError(EventError):
    """The message declares a schema_version this code does not know."""

    reason = "schema_version"


class EventValidationError(EventError):
    """The JSON object does not satisfy the Event contract (types, missing or extra fields)."""

    reason = "validation"

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


# --------------------------------------------------------------------------------------------
# Parsing and encoding
# --------------------------------------------------------------------------------------------


def _reject_constant(name: str) -> NoReturn:
    raise NonFiniteError(f"non-finite number {name} is not allowed")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NonFiniteError(f"number {text[:32]} overflows to infinity")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise InvalidJsonError(f"duplicate key {key[:64]!r}")
            seen.add(key)
    return out


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "<root>"


def parse_event(raw: bytes, max_bytes: int) -> Event:
    """Parse raw message bytes into an :class:`Event`.

    Strict: UTF-8 only (no BOM), JSON without NaN/Infinity literals or numbers that overflow,
    no duplicate keys, a top-level object, a known ``schema_version`` and the Event contract.
    Raises only :class:`EventError` subclasses; ``err.reason`` is one of ``oversize``,
    ``not_utf8``, ``invalid_json``, ``non_finite``, ``not_object``, ``schema_version``,
    ``validation``.
    """
    if len(raw) > max_bytes:
        raise OversizeError(f"message of {len(raw)} bytes exceeds the limit of {max_bytes}")
    try:
        text = raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise NotUtf8Error(f"not UTF-8 at byte {exc.start}") from None
    try:
        data = json.loads(
            text,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
            object_pairs_hook=_unique_keys,
        )
    except EventError:
        raise
    except json.JSONDecodeError as exc:
        raise InvalidJsonError(
            f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise InvalidJsonError("invalid JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer literal with too many digits
        raise InvalidJsonError(f"invalid JSON: {str(exc)[:200]}") from None
    if not isinstance(data, dict):
        raise NotObjectError(f"expected a JSON object, got {type(data).__name__}")
    version = data.get("schema_version", SCHEMA_VERSION)
    if type(version) is not int or version != SCHEMA_VERSION:
        raise SchemaVersionError(
            f"unknown schema_version {str(version)[:32]!r}; this consumer reads {SCHEMA_VERSION}"
        )
    try:
        return Event.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        summary = "; ".join(f"{_loc(err['loc'])}: {err['msg']}" for err in errors[:5])
        more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
        details: list[dict[str, Any]] = [dict(err) for err in errors]
        raise EventValidationError(f"invalid event: {summary}{more}", details) from None


def encode_record(record: BaseModel) -> bytes:
    """Serialise a record to compact UTF-8 JSON bytes (datetimes as ISO 8601 UTC)."""
    return record.model_dump_json().encode("utf-8")


def dead_letter(
    error: BaseException,
    raw: bytes,
    *,
    stage: Stage,
    source_topic: str,
    source_partition: int,
    source_offset: int,
    failed_at: datetime,
    source_key: str | None = None,
    raw_limit: int = DLQ_RAW_LIMIT,
) -> DeadLetter:
    """Build the :class:`DeadLetter` for a message that failed at ``stage``.

    ``reason`` is ``error.reason`` for an :class:`EventError`, else the snake-cased stage
    failure (``<stage>_error``). Only the first ``raw_limit`` bytes are kept (``raw_truncated``).
    """
    reason = error.reason if isinstance(error, EventError) else f"{stage}_error"
    kept = raw[:raw_limit]
    return DeadLetter(
        reason=reason,
        error_class=type(error).__name__,
        error_message=str(error)[:2000],
        stage=stage,
        source_topic=source_topic,
        source_partition=source_partition,
        source_offset=source_offset,
        source_key=source_key,
        raw=base64.b64encode(kept).decode("ascii"),
        raw_size=len(raw),
        raw_truncated=len(kept) < len(raw),
        failed_at=failed_at,
    )


if __name__ == "__main__":  # pragma: no cover - thin entry point
    from decisioning.contract_files import main

    raise SystemExit(main())
