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
from itertools import repeat
from typing import Annotated, Any, Literal

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
_hexdigest = type(hashlib.sha256()).hexdigest
# float64 holds every integer below 2**53 exactly: against a bound below it, comparing an int
# feature as a float gives the exact answer; against a larger bound, equality is a doubt (the
# int may be just beyond the bound and round onto it)
_EXACT = 2.0**53

_Text = {n: Annotated[str, msgspec.Meta(min_length=1, max_length=n)] for n in (128, 256)}
"""A str of 1..n characters (the contract's lengths; msgspec counts code points, as len)."""

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
            ("event_id", _Text[128]),
            ("entity_id", _Text[256]),
            ("event_time", str),
            ("features", features),
            ("schema_version", Literal[SCHEMA_VERSION] | _Unset, _UNSET),
            ("event_type", _Text[128] | _Unset, _UNSET),
            ("producer", _Text[128] | None | _Unset, _UNSET),
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
        for i, row in enumerate(self._fast_rows(raws, window)):
            if row is None:
                try:
                    row = self._slow(raws[i], now)
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

    def _fast_rows(
        self, raws: Sequence[bytes], window: tuple[datetime, datetime] | None
    ) -> list[_Row | None]:
        """Each event's row when cheap checks prove ``validate_event`` would accept it alike,
        else None (``window``: the earliest and latest accepted ``event_time``, if any; the
        feature ranges are checked on the columns). msgspec checks the types, the lengths and
        the schema version in C; the other checks run over the whole batch at once."""
        out: list[_Row | None] = [None] * len(raws)
        decode, max_bytes = self._decoder.decode, self.max_bytes
        at: list[int] = []  # input index of each decoded record
        wires: list[Any] = []
        for i, raw in enumerate(raws):
            # a backslash (a fast memchr) before the only spelling of a NUL
            if len(raw) > max_bytes or (92 in raw and b"\\u0000" in raw):
                continue
            try:
                wires.append(decode(raw))
            except (msgspec.DecodeError, ValueError):
                continue
            at.append(i)
        whens = _utc_times([wire.event_time for wire in wires], window)
        features = [wire.features for wire in wires]
        canonicals = list(map(_ENCODER.encode, features))
        digests = list(map(_hexdigest, map(_sha256, canonicals)))
        quoted = list(map(bytes.count, [raws[i] for i in at], repeat(b'"')))
        feature_quotes = list(map(bytes.count, canonicals, repeat(b'"')))
        values = list(map(msgspec.structs.astuple, features))
        for j, (i, wire, when) in enumerate(zip(at, wires, whens, strict=True)):
            if when is None:
                continue
            # no key dropped: each string token (key or value) has two quotes in the raw
            # bytes, one more per '"' in it; the features' own are counted in their encoding
            version, event_type, producer = wire.schema_version, wire.event_type, wire.producer
            tokens = 7  # 4 keys, 3 values
            tokens += (version is not _UNSET) + 2 * (event_type is not _UNSET)
            tokens += (producer is not _UNSET) + (type(producer) is str)
            quotes = 2 * tokens + feature_quotes[j]
            raw = raws[i]
            if 92 in raw:  # escapes (the time has none: it is of the plain shape)
                if b"\\u0022" in raw:  # a quote without a quote byte: the count proves nothing
                    continue
                quotes += wire.event_id.count('"') + wire.entity_id.count('"')
                quotes += event_type.count('"') if event_type is not _UNSET else 0
                quotes += producer.count('"') if type(producer) is str else 0
            if quoted[j] != quotes:
                continue  # a dropped (duplicate) key, or an escape the count does not know
            row = values[j] + self._left_out if self._left_out else values[j]
            canonical = canonicals[j]
            if b"0.0000" in canonical or (45 in canonical and b"e-" in canonical):
                # a float below 1e-4 may print unlike the stdlib (or a string looks like one)
                used = {n: v for n, v in zip(self._names, row, strict=True) if v is not _UNSET}
                out[i] = wire.event_id, wire.entity_id, when, row, feature_hash(used)
            else:
                out[i] = wire.event_id, wire.entity_id, when, row, digests[j]
        return out


def _utc_times(texts: list[str], window: tuple[datetime, datetime] | None) -> list[datetime | None]:
    """Each ``event_time`` in UTC, or None when it is not of :data:`_TIME`'s shape, does not
    parse or lies outside ``window`` (``validate_event`` names the error)."""
    try:
        if not all(map(_TIME.fullmatch, texts)):
            raise ValueError("not the plain shape")
        whens: list[datetime | None] = list(map(datetime.fromisoformat, texts))
    except (ValueError, OverflowError):  # a shape or a date that does not parse: row by row
        whens = list(map(_parsed, texts))
    if any(when is None or when.tzinfo is not UTC for when in whens):
        whens = [_in_utc(when) for when in whens]
    if window is not None and whens:
        low, high = window
        present = [when for when in whens if when is not None]
        if present and (min(present) < low or max(present) > high):
            whens = [when if when is None or low <= when <= high else None for when in whens]
    return whens


def _parsed(text: str) -> datetime | None:
    if _TIME.fullmatch(text) is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        return None


def _in_utc(when: datetime | None) -> datetime | None:
    if when is None or when.tzinfo is UTC:
        return when
    try:
        return when.astimezone(UTC)
    except OverflowError:
        return None
