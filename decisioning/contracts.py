"""Wire records of decisionflow: events, decisions, outcomes, dead letters.

Every record carries ``schema_version`` (``Literal[1]``; an absent value means 1). Records are
frozen and reject unknown fields. ``python -m decisioning.contract_files`` writes the JSON Schema
and an example of every record into ``docs/contracts/``.

Turning raw bytes into an :class:`Event` (or one :class:`EventError` naming its reason and
dead-letter stage) is :mod:`decisioning.validation`; :func:`dead_letter` turns any failure into
the :class:`DeadLetter` record.
"""

from __future__ import annotations

import base64
import math
from datetime import UTC, datetime
from typing import Annotated, ClassVar, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
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
    "FeatureValue",
    "Outcome",
    "Reason",
    "Stage",
    "UndecodableRecordError",
    "dead_letter",
    "encode_record",
]

SCHEMA_VERSION: Literal[1] = 1
#: Most raw bytes a dead letter carries (base64 of the first DLQ_RAW_LIMIT bytes).
DLQ_RAW_LIMIT = 64 * 1024

_INT64_MAX = 2**63 - 1

FeatureValue = float | int | str | bool | None
"""One feature value on the wire: a JSON scalar. Floats must be finite."""

Arm = Literal["champion", "challenger"]
Stage = Literal["consume", "decode", "validate", "encode", "score", "decide"]

# no NUL character anywhere: PostgreSQL text refuses it, so one such event would stall the sink
_NO_NUL = r"^[^\x00]*$"
EventId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=_NO_NUL)]
EntityId = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=_NO_NUL)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=_NO_NUL)]
FeatureName = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=_NO_NUL)]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00: before the first representable UTC
        raise ValueError("date is outside the representable range once converted to UTC") from None


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
            if isinstance(item, str) and "\x00" in item:
                raise ValueError(f"feature {name!r} contains a NUL character")
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
    reason_method: str | None = Field(
        default=None,
        description="How the feature reasons were computed (integrated_gradients, "
        "gradient_x_input, tree_path, linear...); null when no feature reason was given.",
    )
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
# Errors, encoding and dead letters (validation of raw events: decisioning.validation)
# --------------------------------------------------------------------------------------------


class EventError(ValueError):
    """A raw event that cannot become an :class:`Event`.

    ``reason`` is a stable short label (the dead-letter reason and the metric label) and
    ``stage`` the dead-letter stage: ``consume`` (the Kafka client could not decode the
    record: :class:`UndecodableRecordError`), ``decode`` (the bytes are not a JSON object) or
    ``validate`` (a JSON object that breaks the contract or the feature spec). The other
    subclasses live in :mod:`decisioning.validation`.
    """

    reason: ClassVar[str] = "invalid_event"
    stage: ClassVar[Stage] = "decode"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UndecodableRecordError(EventError):
    """A record the Kafka client could not decode (a compression codec it lacks, a corrupt
    batch): it never reached the event decoder. Stage ``consume``; the message says what the
    client reported."""

    reason = "undecodable"
    stage = "consume"


def encode_record(record: BaseModel) -> bytes:
    """Serialise a record to compact UTF-8 JSON bytes (datetimes as ISO 8601 UTC)."""
    return record.model_dump_json().encode("utf-8")


def dead_letter(
    error: BaseException,
    raw: bytes,
    *,
    stage: Stage | None = None,
    source_topic: str,
    source_partition: int,
    source_offset: int,
    failed_at: datetime,
    source_key: str | None = None,
    raw_limit: int = DLQ_RAW_LIMIT,
) -> DeadLetter:
    """Build the :class:`DeadLetter` for a message that failed at ``stage``.

    An :class:`EventError` carries its own reason and stage; any other failure needs ``stage``
    and gets the reason ``<stage>_error``. Only the first ``raw_limit`` bytes are kept
    (``raw_truncated``).
    """
    if isinstance(error, EventError):
        reason, stage = error.reason, stage or error.stage
    elif stage is None:
        raise ValueError("dead_letter needs the stage of a failure that is not an EventError")
    else:
        reason = f"{stage}_error"
    kept = raw[:raw_limit]
    return DeadLetter(
        reason=reason,
        error_class=type(error).__name__,
        error_message=_printable(str(error)[:2000]),
        stage=stage,
        source_topic=source_topic,
        source_partition=source_partition,
        source_offset=source_offset,
        source_key=_printable(source_key) if source_key is not None else None,
        raw=base64.b64encode(kept).decode("ascii"),
        raw_size=len(raw),
        raw_truncated=len(kept) < len(raw),
        failed_at=failed_at,
    )


def _printable(text: str) -> str:
    """``text`` with NUL characters spelled ``\\x00`` (stores refuse NUL in text)."""
    return text.replace("\x00", "\\x00")
