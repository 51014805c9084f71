"""Decode a batch of raw events into :class:`~decisioning.columns.EventColumns`, fast.

Same result as :func:`~decisioning.validation.validate_event` per record, several times faster
for good events. msgspec's strict typed decoder reads each record into a Struct built for the
spec: every feature a field typed by its kind (unknown features, wrong types, integers beyond
64 bits fail in C). The record then takes the fast path when cheap checks prove that the
stdlib + pydantic path would accept it with the same values:

* no duplicate key: every string token (key or value) has two quotes in the raw bytes, more
  when escaped; as many quotes as the decoded strings need proves that no key was dropped;
* no ``\\u0000`` escape (no NUL in any string), lengths within the contract's limits;
* ``event_time`` in the plain ISO 8601 shape ``YYYY-MM-DDTHH:MM:SS[.ffffff](Z|+HH:MM)``, and
  within the accepted window (when there is one).

Anything else (a decode error, a doubt) goes through ``validate_event`` itself, which gives the
exact error or event. Feature ranges are checked on the decoded columns at once (numpy); a row
that may be out of range is decoded again by ``validate_event`` for its exact error.

``feature_hash`` is the sha256 of msgspec's encoding of that Struct (fields in sorted order,
absent ones left out: the canonical JSON) unless a float in it may print unlike the stdlib
(|x| < 1e-4; floats of 1e16 or more take the slow path), then
:func:`~decisioning.audit.feature_hash`.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
import numpy as np
import numpy.typing as npt

from decisioning.audit import feature_hash
from decisioning.columns import EventColumns
from decisioning.contracts import SCHEMA_VERSION, EventError
from decisioning.validation import FeatureChecker, Range, TimeWindow, validate_event

__all__ = ["BatchDecoder", "DecodedBatch", "UnhashableFeaturesError"]

_UNSET = msgspec.UNSET
_Unset = msgspec.UnsetType
_Int64 = Annotated[int, msgspec.Meta(ge=-(2**63 - 1), le=2**63 - 1)]  # as Event's validator
# msgspec prints floats as the stdlib does in [1e-4, 1e16) (and 0); larger ones take the
# slow path, smaller ones are spotted in the encoded features (0.0000... or ...e-...)
_Float = Annotated[float, msgspec.Meta(gt=-1e16, lt=1e16)]
#: The wire type of a feature of each kind (``validation._type_ok``); other kinds: categorical.
_KIND_TYPES: dict[str, Any] = {
    "numeric": _Int64 | _Float | None | _Unset,
    "boolean": bool | str | None | _Unset,
    "categorical": str | _Int64 | None | _Unset,
}
#: The plain ISO 8601 shape whose parse pydantic and ``datetime.fromisoformat`` agree on.
_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])",
    re.ASCII,
)
_BAD_NAME = re.compile(r'[\x00-\x1f"\\]')  # FeatureName refuses NUL, msgspec the rest
_ENCODER = msgspec.json.Encoder()
_sha256 = hashlib.sha256
# float64 holds every integer below 2**53 exactly: against a bound below it, comparing an int
# feature as a float gives the exact answer; against a larger bound, equality is a doubt (the
# int may be just beyond the bound and round onto it)
_EXACT = 2.0**53

_Row = tuple[str, str, datetime, tuple[Any, ...], str]
"""(event_id, entity_id, event_time, feature values (``_UNSET``: absent), feature_hash)."""


class UnhashableFeaturesError(EventError):
    """A valid event whose features have no canonical UTF-8 JSON (a lone surrogate in a string).

    ``validate_event`` accepts such an event, but ``audit.feature_hash`` cannot hash it; the
    record-by-record engine dead-lettered it at the ``decide`` stage (``decide_error``), and so
    does this, with the ``UnicodeEncodeError``'s message.
    """

    reason = "decide_error"
    stage = "decide"


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    """The good events of a batch as columns, and the errors of the others."""

    columns: EventColumns
    ok: list[int]
    """Input index of each row of ``columns``."""
    errors: list[tuple[int, EventError]]
    """(input index, error) of each rejected record, in input order."""


def _wire_struct(kinds: Mapping[str, str]) -> tuple[type[msgspec.Struct], list[str]]:
    """The Event's wire Struct for a spec, and its feature names in field (sorted) order.

    A spec name the contract or msgspec cannot take as a field is left out: an event that
    sends it takes the slow path.
    """
    names = sorted(
        name for name in kinds if 0 < len(name) <= 128 and _BAD_NAME.search(name) is None
    )
    features = msgspec.defstruct(
        "_Features",
        [(f"f{j}", _KIND_TYPES.get(kinds[name], _KIND_TYPES["categorical"]), _UNSET)
         for j, name in enumerate(names)],
        rename={f"f{j}": name for j, name in enumerate(names)},
        forbid_unknown_fields=True,
    )  # fmt: skip
    wire = msgspec.defstruct(
        "_WireEvent",
        [
            ("event_id", str),
            ("entity_id", str),
            ("event_time", str),
            ("features", features),
            ("schema_version", int | _Unset, _UNSET),
            ("event_type", str | _Unset, _UNSET),
            ("producer", str | None | _Unset, _UNSET),
        ],
        forbid_unknown_fields=True,
    )
    return wire, names


def _column(values: list[float]) -> npt.NDArray[np.float64]:
    """``values`` as a (len, 1) float array, to compare row-wise with (columns, rows)."""
    return np.array(values, dtype=np.float64).reshape(-1, 1)


class BatchDecoder:
    """Decodes raw events like ``validate_event(raw, max_bytes, FeatureChecker(kinds, spec,
    ranges=ranges, window=window), now)``.

    ``kinds`` maps each spec feature to ``numeric``, ``categorical`` or ``boolean``; ``ranges``
    and ``window`` are as in :class:`~decisioning.validation.FeatureChecker`.
    """

    def __init__(
        self,
        kinds: Mapping[str, str],
        spec_name: str,
        max_bytes: int,
        *,
        ranges: Mapping[str, Range] | None = None,
        window: TimeWindow | None = None,
    ) -> None:
        self.kinds = dict(kinds)
        self.spec_name = spec_name
        self.max_bytes = max_bytes
        self.checker = FeatureChecker(self.kinds, spec_name, ranges=ranges, window=window)
        # the ranged columns, their bounds as (columns, 1) arrays (open sides infinite) and
        # which bounds a float may equal while its int lies beyond (None: no such bound)
        self._ranged = list(self.checker.ranges)
        bounds = list(self.checker.ranges.values())
        self._low = _column([-math.inf if low is None else low for low, _ in bounds])
        self._high = _column([math.inf if high is None else high for _, high in bounds])
        low_doubt = np.isfinite(self._low) & (np.abs(self._low) >= _EXACT)
        high_doubt = np.isfinite(self._high) & (np.abs(self._high) >= _EXACT)
        self._doubt = (low_doubt, high_doubt) if low_doubt.any() or high_doubt.any() else None
        wire, fields = _wire_struct(self.kinds)
        self._decoder = msgspec.json.Decoder(wire)
        # a row's feature values: the Struct's fields, then the spec names it left out (only
        # slow events have those)
        self._names = [*fields, *sorted(self.kinds.keys() - set(fields))]
        self._left_out = (_UNSET,) * (len(self._names) - len(fields))

    def decode(self, raws: Sequence[bytes], now: datetime | None = None) -> DecodedBatch:
        """Decode ``raws``: the good events as columns (input order) and one error per bad one.

        ``now`` (default: the current time) is the clock the ``event_time`` window is read at.
        """
        now = now or datetime.now(UTC)
        window = self.checker.window.bounds(now) if self.checker.window else None
        ok: list[int] = []
        errors: list[tuple[int, EventError]] = []
        rows: list[_Row] = []
        fast = self._fast
        for i, raw in enumerate(raws):
            row = fast(raw, window)
            if row is None:
                try:
                    row = self._slow(raw, now)
                except EventError as exc:
                    errors.append((i, exc))
                    continue
            ok.append(i)
            rows.append(row)
        if not rows:
            empty = EventColumns([], [], [], {name: [] for name in self.kinds}, [])
            return DecodedBatch(columns=empty, ok=ok, errors=errors)
        batch = DecodedBatch(columns=self._columns(rows), ok=ok, errors=errors)
        suspects = self._range_suspects(batch.columns.features)
        return self._recheck(batch, suspects, raws, now) if suspects.size else batch

    def _columns(self, rows: list[_Row]) -> EventColumns:
        """The rows as columns (absent features: None)."""
        by_column = list(zip(*rows, strict=True))
        by_name = dict(zip(self._names, zip(*by_column[3], strict=True), strict=True))
        none_for_unset = {_UNSET: None}.get
        features = {
            name: list(map(none_for_unset, by_name[name], by_name[name])) for name in self.kinds
        }
        return EventColumns(
            event_id=list(by_column[0]),
            entity_id=list(by_column[1]),
            event_time=list(by_column[2]),
            features=features,
            feature_hash=list(by_column[4]),
        )

    def _range_suspects(self, features: Mapping[str, list[Any]]) -> npt.NDArray[np.intp]:
        """Rows that may hold a value out of its column's range (vectorised; None is NaN)."""
        if not self._ranged:
            return np.empty(0, np.intp)
        values = np.array([features[name] for name in self._ranged], dtype=np.float64)
        out = (values < self._low) | (values > self._high)
        if self._doubt is not None:  # a bound beyond 2**53: equal to it as a float is a doubt
            low_doubt, high_doubt = self._doubt
            out |= (low_doubt & (values == self._low)) | (high_doubt & (values == self._high))
        return np.flatnonzero(out.any(axis=0))

    def _recheck(
        self,
        batch: DecodedBatch,
        suspects: npt.NDArray[np.intp],
        raws: Sequence[bytes],
        now: datetime,
    ) -> DecodedBatch:
        """``batch`` less the ``suspects`` rows that ``validate_event`` rejects, with its errors."""
        errors = list(batch.errors)
        dropped: set[int] = set()
        for row in suspects.tolist():
            i = batch.ok[row]
            try:
                self._slow(raws[i], now)
            except EventError as exc:
                errors.append((i, exc))
                dropped.add(row)
        if not dropped:
            return batch
        kept = [row for row in range(len(batch.ok)) if row not in dropped]
        errors.sort(key=lambda error: error[0])
        return DecodedBatch(
            columns=batch.columns.take(kept), ok=[batch.ok[row] for row in kept], errors=errors
        )

    def _slow(self, raw: bytes, now: datetime) -> _Row:
        """The event's row by ``validate_event`` (raises its :class:`EventError`)."""
        event = validate_event(raw, self.max_bytes, self.checker, now)
        try:
            digest = feature_hash(event.features)
        except UnicodeEncodeError as exc:
            raise UnhashableFeaturesError(str(exc)) from None
        get = event.features.get
        values = tuple(get(name, _UNSET) for name in self._names)
        return event.event_id, event.entity_id, event.event_time, values, digest

    def _fast(self, raw: bytes, window: tuple[datetime, datetime] | None) -> _Row | None:
        """The event's row when cheap checks prove ``validate_event`` would accept it alike
        (``window``: the earliest and latest accepted ``event_time``, if any; the feature
        ranges are checked on the columns)."""
        if len(raw) > self.max_bytes:
            return None
        escaped = 92 in raw  # a backslash (a fast memchr)
        if escaped and b"\\u0000" in raw:  # the only spelling of a NUL
            return None
        try:
            wire: Any = self._decoder.decode(raw)
        except (msgspec.DecodeError, ValueError):
            return None
        version, event_type, producer = wire.schema_version, wire.event_type, wire.producer
        event_id, entity_id, text = wire.event_id, wire.entity_id, wire.event_time
        if not (0 < len(event_id) <= 128 and 0 < len(entity_id) <= 256):
            return None
        tokens = 7  # string tokens: 4 keys, 3 values (the features' own: in `canonical`)
        if version is not _UNSET:
            if version != SCHEMA_VERSION:
                return None
            tokens += 1
        if event_type is not _UNSET:
            if not 0 < len(event_type) <= 128:
                return None
            tokens += 2
        if producer is not _UNSET:
            if producer is not None:
                if not 0 < len(producer) <= 128:
                    return None
                tokens += 1
            tokens += 1
        if _TIME.fullmatch(text) is None:
            return None
        try:
            when = datetime.fromisoformat(text)
            if when.tzinfo is not UTC:
                when = when.astimezone(UTC)
        except (ValueError, OverflowError):
            return None
        if window is not None and not window[0] <= when <= window[1]:
            return None  # out of the window: validate_event names it
        canonical = _ENCODER.encode(wire.features)
        quotes = 2 * tokens + canonical.count(b'"')  # a '"' in a string adds one (as \")
        if escaped:
            if b"\\u0022" in raw:  # a quote without a quote byte: the count proves nothing
                return None
            quotes += event_id.count('"') + entity_id.count('"') + text.count('"')
            quotes += event_type.count('"') if event_type is not _UNSET else 0
            quotes += producer.count('"') if isinstance(producer, str) else 0
        if raw.count(b'"') != quotes:
            return None  # a dropped (duplicate) key, or an escape the count does not know
        values = msgspec.structs.astuple(wire.features)
        if self._left_out:
            values += self._left_out
        if b"0.0000" in canonical or (45 in canonical and b"e-" in canonical):
            # a float below 1e-4 may print unlike the stdlib (or a string looks like one)
            used = {n: v for n, v in zip(self._names, values, strict=True) if v is not _UNSET}
            return event_id, entity_id, when, values, feature_hash(used)
        return event_id, entity_id, when, values, _sha256(canonical).hexdigest()
