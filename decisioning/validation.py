"""All validation of a raw event, in one place: bytes -> :class:`Event`, or an error that
names its reason and dead-letter stage.

1. decode (stage ``decode``): size limit, strict UTF-8, strict JSON (no NaN/Infinity, no
   overflowing numbers, no duplicate keys), a top-level object;
2. contract (stage ``validate``): a known ``schema_version`` and the :class:`Event` model;
3. features (stage ``validate``): every feature known to the spec, each value of its column's
   type (the encoder would otherwise impute a wrong type silently);
4. ranges (stage ``validate``, reason ``out_of_range``): each numeric value within its
   column's declared ``min`` / ``max`` (inclusive) and ``event_time`` within the accepted
   window around now (``max_age`` before, ``max_future`` after).

:func:`validate_event` runs them all; the worker dead-letters whatever it raises with
``error.reason`` and ``error.stage``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from pydantic import ValidationError

from decisioning.contracts import SCHEMA_VERSION, Event, EventError

__all__ = [
    "EventError",
    "EventValidationError",
    "FeatureChecker",
    "FeatureTypeError",
    "InvalidJsonError",
    "NonFiniteError",
    "NotObjectError",
    "NotUtf8Error",
    "OutOfRangeError",
    "OversizeError",
    "SchemaVersionError",
    "TimeWindow",
    "UnknownFeatureError",
    "parse_event",
    "validate_event",
]


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
    stage = "validate"


class EventValidationError(EventError):
    """The JSON object does not satisfy the Event contract (types, missing or extra fields)."""

    reason = "validation"
    stage = "validate"

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


# --------------------------------------------------------------------------------------------
# Decode and contract
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


# --------------------------------------------------------------------------------------------
# Features against the spec
# --------------------------------------------------------------------------------------------


class FeatureTypeError(EventError):
    """A feature value does not have the type its spec column declares."""

    reason = "feature_type"
    stage = "validate"


class UnknownFeatureError(EventError):
    """An event names a feature the spec does not know."""

    reason = "unknown_feature"
    stage = "validate"


class OutOfRangeError(EventError):
    """A numeric feature or the ``event_time`` lies outside the range the spec accepts."""

    reason = "out_of_range"
    stage = "validate"


Range = tuple[float | None, float | None]
"""A column's accepted (min, max), both inclusive; None leaves that side open."""

_EARLIEST = datetime.min.replace(tzinfo=UTC)
_LATEST = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """The accepted ``event_time``: at most ``max_age_s`` seconds before now and
    ``max_future_s`` after it; None leaves that side open."""

    max_age_s: float | None = None
    max_future_s: float | None = None

    def bounds(self, now: datetime) -> tuple[datetime, datetime]:
        """Earliest and latest accepted time at ``now`` (aware), clamped to what datetime holds."""
        return (
            _shift(now, -self.max_age_s) if self.max_age_s is not None else _EARLIEST,
            _shift(now, self.max_future_s) if self.max_future_s is not None else _LATEST,
        )


def _shift(now: datetime, seconds: float) -> datetime:
    try:
        return now + timedelta(seconds=seconds)
    except OverflowError:  # a window wider than the calendar: that side is open
        return _EARLIEST if seconds < 0 else _LATEST


def _number(value: float) -> str:
    """``value`` as a message shows it: integral values without ``.0``, others as repr."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


def _seconds(seconds: float) -> str:
    """A duration in its largest whole unit: ``3650d``, ``1h``, ``90s``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and (seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    return f"{_number(seconds)}s"


def _type_ok(kind: str, value: Any) -> bool:
    if value is None:
        return True
    if kind == "numeric":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool | str)
    return isinstance(value, str | int) and not isinstance(value, bool)  # categorical


class FeatureChecker:
    """Checks events' features (and ``event_time``) against one feature spec.

    ``kinds`` maps each column to its type (``numeric``, ``categorical``, ``boolean``), as in
    ``{c.name: c.type for c in spec.columns}`` of a ``models.spec.FeatureSpec``; ``ranges``
    maps numeric columns to their accepted (min, max) (``spec.ranges``); ``window`` is the
    accepted ``event_time`` window (``spec.event_time``), None: any time.
    """

    def __init__(
        self,
        kinds: Mapping[str, str],
        spec_name: str,
        *,
        ranges: Mapping[str, Range] | None = None,
        window: TimeWindow | None = None,
    ) -> None:
        self.spec_name = spec_name
        self.kinds = dict(kinds)
        self.ranges = _checked_ranges(self.kinds, ranges or {})
        self.window = window

    def __call__(self, features: Mapping[str, Any]) -> None:
        """Raise if ``features`` has an unknown name, a value of the wrong type or one out of
        its column's range (checked in spec order once every type is right)."""
        kinds = self.kinds
        if not kinds.keys() >= features.keys():
            unknown = sorted(set(features) - kinds.keys())
            raise UnknownFeatureError(f"features not in spec {self.spec_name!r}: {unknown}")
        for name, value in features.items():
            if not _type_ok(kinds[name], value):
                raise FeatureTypeError(
                    f"feature {name!r} must be {kinds[name]}, "
                    f"got {type(value).__name__} {value!r:.40}"
                )
        for name, (low, high) in self.ranges.items():
            value = features.get(name)
            if value is None:
                continue
            if low is not None and value < low:
                raise OutOfRangeError(
                    f"feature {name!r} = {_number(value)} is below the minimum {_number(low)}"
                )
            if high is not None and value > high:
                raise OutOfRangeError(
                    f"feature {name!r} = {_number(value)} is above the maximum {_number(high)}"
                )

    def check_time(self, when: datetime, now: datetime) -> None:
        """Raise :class:`OutOfRangeError` if ``when`` lies outside the window at ``now``."""
        window = self.window
        if window is None:
            return
        earliest, latest = window.bounds(now)
        if when < earliest:
            raise OutOfRangeError(
                f"event_time = {when.isoformat()} is before the earliest accepted "
                f"{earliest.isoformat()} (max_age {_seconds(window.max_age_s or 0.0)})"
            )
        if when > latest:
            raise OutOfRangeError(
                f"event_time = {when.isoformat()} is after the latest accepted "
                f"{latest.isoformat()} (max_future {_seconds(window.max_future_s or 0.0)})"
            )


def _checked_ranges(kinds: Mapping[str, str], ranges: Mapping[str, Range]) -> dict[str, Range]:
    """``ranges`` without open ones, after checking they name numeric columns, min <= max."""
    out: dict[str, Range] = {}
    for name, (low, high) in ranges.items():
        if kinds.get(name) != "numeric":
            raise ValueError(f"a range needs a numeric column: {name!r} is {kinds.get(name)}")
        if (low is not None and math.isnan(low)) or (high is not None and math.isnan(high)):
            raise ValueError(f"range of {name!r} has a NaN bound")
        if low is not None and high is not None and low > high:
            raise ValueError(f"range of {name!r}: min {low!r} > max {high!r}")
        if (low, high) != (None, None):
            out[name] = (low, high)
    return out


def validate_event(
    raw: bytes, max_bytes: int, check_features: FeatureChecker, now: datetime | None = None
) -> Event:
    """Decode, check the contract, the features and their ranges, and ``event_time`` against
    the window at ``now`` (default: the current time): the one validation of a raw event."""
    event = parse_event(raw, max_bytes)
    check_features(event.features)
    if check_features.window is not None:
        check_features.check_time(event.event_time, now or datetime.now(UTC))
    return event
