"""BatchDecoder: the same accept/reject, errors, values and feature hashes as validate_event."""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import decisioning.batch_decode as batch_decode
from decisioning.audit import canonical_json, feature_hash
from decisioning.batch_decode import BatchDecoder, DecodedBatch, UnhashableFeaturesError
from decisioning.contracts import Event, EventError
from decisioning.validation import FeatureChecker, TimeWindow, validate_event

KINDS = {
    "Amount": "numeric",
    "Income": "numeric",
    "Seniority": "numeric",
    "Home": "categorical",
    "Job": "categorical",
    "Flag": "boolean",
    "Z\u00e9\U0001f600": "numeric",  # sorts last, encodes as UTF-8
    'Q"uote': "categorical",  # not a msgspec field name: such events take the slow path
    "x" * 129: "numeric",  # breaks the contract's FeatureName: never valid
}
SPEC = "credit"
MAX = 300_000
# the ranged contract: ranges on some numeric features and an event_time window at NOW
RANGES: dict[str, tuple[float | None, float | None]] = {
    "Amount": (0.0, 1e6),
    "Income": (-1.0, 2.0**60),  # above 2**53: an int and its float may differ at the bound
    "Z\u00e9\U0001f600": (None, 10.0),
}
WINDOW = TimeWindow(max_age_s=3650 * 86400.0, max_future_s=3600.0)
NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
EARLIEST, LATEST = NOW - timedelta(days=3650), NOW + timedelta(hours=1)


def _checker(ranged: bool) -> FeatureChecker:
    if ranged:
        return FeatureChecker(KINDS, SPEC, ranges=RANGES, window=WINDOW)
    return FeatureChecker(KINDS, SPEC)


def _decoder(max_bytes: int = MAX, ranged: bool = False) -> BatchDecoder:
    if ranged:
        return BatchDecoder(KINDS, SPEC, max_bytes, ranges=RANGES, window=WINDOW)
    return BatchDecoder(KINDS, SPEC, max_bytes)


def _event(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "schema_version": 1,
        "event_id": "e-1",
        "entity_id": "cust-1",
        "event_type": "credit_application",
        "event_time": "2026-11-23T12:00:00.250000+02:00",
        "features": {"Amount": 800, "Income": 129.5, "Home": "rent", "Flag": True, "Job": None},
    }
    base.update(overrides)
    return base


def _raw(obj: object, **dumps: Any) -> bytes:
    return json.dumps(obj, **dumps).encode()


def _expected(
    raw: bytes, max_bytes: int = MAX, ranged: bool = False
) -> tuple[Event, str] | Exception:
    """What the record-by-record path makes of ``raw``: (event, feature hash) or the error."""
    try:
        event = validate_event(raw, max_bytes, _checker(ranged), NOW)
    except Exception as exc:  # EventError; validate_event lets a few others through
        return exc
    try:
        return event, feature_hash(event.features)
    except UnicodeEncodeError as exc:  # the hash of a lone surrogate
        return UnhashableFeaturesError(str(exc))


def _same_error(got: EventError, want: EventError) -> None:
    assert type(got) is type(want)
    assert (got.reason, got.stage, str(got), got.message) == (
        want.reason,
        want.stage,
        str(want),
        want.message,
    )
    assert getattr(got, "errors", None) == getattr(want, "errors", None)


def _check_batch(raws: list[bytes], max_bytes: int = MAX, ranged: bool = False) -> DecodedBatch:
    """Decode ``raws`` and compare every record with the record-by-record path (``ranged``:
    both with the ranges and the event_time window at NOW)."""
    wants = [_expected(raw, max_bytes, ranged) for raw in raws]
    crash = next(
        (w for w in wants if isinstance(w, Exception) and not isinstance(w, EventError)), None
    )
    if crash is not None:  # validate_event raised something else: so does the batch
        with pytest.raises(type(crash), match=re.escape(str(crash))):
            _decoder(max_bytes, ranged).decode(raws, now=NOW)
        return _decoder(max_bytes, ranged).decode([], now=NOW)
    batch = _decoder(max_bytes, ranged).decode(raws, now=NOW)
    cols = batch.columns
    errors = dict(batch.errors)
    assert sorted([*batch.ok, *errors]) == list(range(len(raws)))
    assert batch.ok == sorted(batch.ok) and [i for i, _ in batch.errors] == sorted(errors)
    assert len(cols) == len(batch.ok) and set(cols.features) == set(KINDS)
    row_of = {i: row for row, i in enumerate(batch.ok)}
    for i, (raw, want) in enumerate(zip(raws, wants, strict=True)):
        if isinstance(want, Exception):
            assert isinstance(want, EventError)
            assert i in errors, (raw, want)
            _same_error(errors[i], want)
            continue
        assert i in row_of, (raw, errors.get(i))
        event, digest = want
        row = row_of[i]
        assert cols.event_id[row] == event.event_id
        assert cols.entity_id[row] == event.entity_id
        assert cols.event_time[row] == event.event_time
        assert cols.event_time[row].tzinfo is UTC
        assert cols.feature_hash[row] == digest
        for name in KINDS:
            value = cols.features[name][row]
            assert value == event.features.get(name)
            assert type(value) is type(event.features.get(name))
    return batch


# --------------------------------------------------------------------------------------------
# Corpus: every reason, compared with validate_event
# --------------------------------------------------------------------------------------------

GOOD = _raw(_event())
CORPUS: dict[str, tuple[bytes, str | None]] = {
    "good": (GOOD, None),
    "good compact": (_raw(_event(), separators=(",", ":")), None),
    "good indented": (_raw(_event(), indent=2), None),
    "good ascii escapes": (_raw(_event(entity_id="M\u00fcller \U0001f600"), indent=1), None),
    "good non-ascii": (_raw(_event(entity_id="M\u00fcller"), ensure_ascii=False), None),
    "good no version": (_raw({k: v for k, v in _event().items() if k != "schema_version"}), None),
    "good producer null": (_raw(_event(producer=None)), None),
    "good producer": (_raw(_event(producer="web")), None),
    "good Z": (_raw(_event(event_time="2026-11-23T12:00:00Z")), None),
    "good negative offset": (_raw(_event(event_time="2026-11-23T23:30:00.5-05:30")), None),
    "good lowercase t": (_raw(_event(event_time="2026-11-23t12:00:00Z")), None),
    "good space separator": (_raw(_event(event_time="2026-11-23 12:00:00+00:00")), None),
    "good quote in value": (_raw(_event(features={"Home": 'r"e:nt', "Job": "a\\"})), None),
    "good float forms": (
        _raw(_event(features={"Amount": 1e-7, "Income": 2.5e-5, "Seniority": -0.0})),
        None,
    ),
    "good huge float": (_raw(_event(features={"Amount": 1e22})), None),
    "good big ints": (_raw(_event(features={"Amount": 2**63 - 1, "Job": -(2**63) + 1})), None),
    "good empty features": (_raw(_event(features={})), None),
    "good control chars": (_raw(_event(features={"Home": "a\n\t\x01\x7f\u2028"})), None),
    "oversize": (GOOD + b" " * MAX, "oversize"),
    "latin-1": ('{"entity_id": "M\u00fcller"}'.encode("latin-1"), "not_utf8"),
    "bad utf-8 in string": (GOOD.replace(b"rent", b"r\xffnt"), "not_utf8"),
    "empty": (b"", "invalid_json"),
    "garbage": (b"not json", "invalid_json"),
    "truncated": (GOOD[:-3], "invalid_json"),
    "trailing": (GOOD + b" x", "invalid_json"),
    "bom": (b"\xef\xbb\xbf" + GOOD, "invalid_json"),
    "duplicate top-level key": (GOOD.replace(b"{", b'{"event_id": "other", ', 1), "invalid_json"),
    "duplicate same value": (GOOD.replace(b"{", b'{"event_id": "e-1", ', 1), "invalid_json"),
    "duplicate feature key": (
        GOOD.replace(b'"features": {', b'"features": {"Amount": 1, '),
        "invalid_json",
    ),
    "duplicate key, spaced": (
        GOOD.replace(b'"features": {', b'"features": {"Amount" :\n 1, '),
        "invalid_json",
    ),
    "duplicate key, escaped": (
        GOOD.replace(b'"features": {', b'"features": {"Am\\u006funt": 1, '),
        "invalid_json",
    ),
    "huge int literal": (GOOD.replace(b"800", b"9" * 5000), "invalid_json"),
    "deep nesting": (b"[" * 100_000 + b"]" * 100_000, "invalid_json"),
    "NaN literal": (GOOD.replace(b"129.5", b"NaN"), "non_finite"),
    "Infinity literal": (GOOD.replace(b"129.5", b"-Infinity"), "non_finite"),
    "overflowing float": (GOOD.replace(b"129.5", b"1e400"), "non_finite"),
    "array": (b"[1, 2]", "not_object"),
    "string": (b'"event"', "not_object"),
    "null": (b"null", "not_object"),
    "schema_version 2": (_raw(_event(schema_version=2)), "schema_version"),
    "schema_version '1'": (_raw(_event(schema_version="1")), "schema_version"),
    "schema_version true": (_raw(_event(schema_version=True)), "schema_version"),
    "schema_version 1.0": (_raw(_event(schema_version=1.0)), "schema_version"),
    "schema_version null": (_raw(_event(schema_version=None)), "schema_version"),
    "missing event_id": (
        _raw({k: v for k, v in _event().items() if k != "event_id"}),
        "validation",
    ),
    "missing features": (
        _raw({k: v for k, v in _event().items() if k != "features"}),
        "validation",
    ),
    "extra field": (_raw(_event(colour="red")), "validation"),
    "empty event_id": (_raw(_event(event_id="")), "validation"),
    "long event_id": (_raw(_event(event_id="x" * 129)), "validation"),
    "longest event_id": (_raw(_event(event_id="\u00e9" * 128)), None),
    "long entity_id": (_raw(_event(entity_id="x" * 257)), "validation"),
    "longest entity_id": (_raw(_event(entity_id="x" * 256)), None),
    "long event_type": (_raw(_event(event_type="x" * 129)), "validation"),
    "empty producer": (_raw(_event(producer="")), "validation"),
    "event_id int": (_raw(_event(event_id=17)), "validation"),
    "NUL in event_id": (_raw(_event(event_id="e\x001")), "validation"),
    "NUL in entity_id": (_raw(_event(entity_id="\x00")), "validation"),
    "NUL in feature value": (_raw(_event(features={"Home": "r\x00ent"})), "validation"),
    "NUL in feature name": (_raw(_event(features={"Ho\x00me": 1})), "validation"),
    "empty feature name": (_raw(_event(features={"": 1})), "validation"),
    "long feature name": (_raw(_event(features={"x" * 129: 1})), "validation"),
    "naive time": (_raw(_event(event_time="2026-11-23T12:00:00")), "validation"),
    "bad time": (_raw(_event(event_time="yesterday")), "validation"),
    "offset minutes 60": (_raw(_event(event_time="2026-11-23T12:00:00+12:60")), "validation"),
    "February 30": (_raw(_event(event_time="2026-02-30T12:00:00Z")), "validation"),
    "good unix time": (_raw(_event(event_time=1_700_000_000)), None),
    "features list": (_raw(_event(features=[1, 2])), "validation"),
    "nested feature": (_raw(_event(features={"Amount": {"b": 1}})), "validation"),
    "int64 overflow": (_raw(_event(features={"Amount": 2**63})), "validation"),
    "int64 underflow": (_raw(_event(features={"Amount": -(2**63)})), "validation"),
    "uint64 overflow": (_raw(_event(features={"Job": 2**64})), "validation"),
    "unknown feature": (_raw(_event(features={"Colour": "red", "Amount": 1})), "unknown_feature"),
    "bool as numeric": (_raw(_event(features={"Amount": True})), "feature_type"),
    "string as numeric": (_raw(_event(features={"Amount": "800"})), "feature_type"),
    "float as categorical": (_raw(_event(features={"Home": 1.5})), "feature_type"),
    "bool as categorical": (_raw(_event(features={"Job": False})), "feature_type"),
    "int as boolean": (_raw(_event(features={"Flag": 1})), "feature_type"),
    "good unicode feature name": (_raw(_event(features={"Z\u00e9\U0001f600": 1.5})), None),
    "good quoted feature name": (_raw(_event(features={'Q"uote': "a"})), None),
    "feature name too long": (_raw(_event(features={"x" * 129: 1.5})), "validation"),
    "lone surrogate feature": (_raw(_event(features={"Home": "\udc00"})), "decide_error"),
    "lone surrogate id": (_raw(_event(event_id="\ud800")), "validation"),
    "UTC before year 1": (_raw(_event(event_time="0001-01-01T00:00:00+01:00")), "validation"),
}


def test_corpus_covers_every_reason() -> None:
    reasons = {reason for _, reason in CORPUS.values()}
    assert reasons >= {
        None,
        "oversize",
        "not_utf8",
        "invalid_json",
        "non_finite",
        "not_object",
        "schema_version",
        "validation",
        "unknown_feature",
        "feature_type",
        "decide_error",
    }


@pytest.mark.parametrize("name", list(CORPUS))
def test_corpus_matches_validate_event(name: str) -> None:
    raw, reason = CORPUS[name]
    want = _expected(raw)
    if not isinstance(want, Exception):
        assert reason is None
    else:
        assert (want.reason if isinstance(want, EventError) else "crash") == reason
    _check_batch([raw])


def test_mixed_batch_keeps_input_indices() -> None:
    reasons = [(raw, reason) for raw, reason in CORPUS.values() if reason != "crash"]
    raws = [raw for raw, _ in reasons]
    batch = _check_batch(raws)
    assert [reasons[i][1] for i in batch.ok] == [None] * len(batch.ok)
    assert [(i, e.reason) for i, e in batch.errors] == [
        (i, r) for i, (_, r) in enumerate(reasons) if r is not None
    ]
    assert batch.columns.event_id == [json.loads(raws[i])["event_id"] for i in batch.ok]
    assert batch.columns.entity_id == [json.loads(raws[i])["entity_id"] for i in batch.ok]


def test_empty_batch() -> None:
    batch = BatchDecoder(KINDS, SPEC, MAX).decode([])
    assert batch.ok == [] and batch.errors == [] and len(batch.columns) == 0
    assert batch.columns.features == {name: [] for name in KINDS}


def test_absent_features_are_none_in_their_column() -> None:
    raws = [_raw(_event(features={"Amount": 1})), _raw(_event(features={"Home": "own"}))]
    cols = _check_batch(raws).columns
    assert cols.features["Amount"] == [1, None]
    assert cols.features["Home"] == [None, "own"]
    assert cols.event_time[0] == datetime(2026, 11, 23, 10, 0, 0, 250_000, tzinfo=UTC)
    assert cols.event_time[0].tzinfo is UTC


FAST = [
    "good",
    "good compact",
    "good indented",
    "good ascii escapes",
    "good non-ascii",
    "good no version",
    "good producer null",
    "good producer",
    "good Z",
    "good negative offset",
    "good float forms",
    "good big ints",
    "good empty features",
    "good control chars",
    "good unicode feature name",
]


def test_common_producer_formats_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*_: object) -> None:
        raise AssertionError("fell back to validate_event")

    monkeypatch.setattr(batch_decode, "validate_event", never)
    raws = [CORPUS[name][0] for name in FAST] + [_raw(_event(), indent=4, sort_keys=True)]
    batch = BatchDecoder(KINDS, SPEC, MAX).decode(raws)
    assert batch.errors == [] and len(batch.ok) == len(raws)


# --------------------------------------------------------------------------------------------
# Ranges and the event_time window (the ranged contract, at NOW)
# --------------------------------------------------------------------------------------------


def _feat(**features: object) -> bytes:
    return _raw(_event(features={"Home": "rent", **features}))


def _at(when: datetime) -> bytes:
    return _raw(_event(event_time=when.isoformat()))


RANGED: dict[str, tuple[bytes, str | None]] = {
    "good": (GOOD, None),
    "Amount at min": (_feat(Amount=0), None),
    "Amount -0.0": (_feat(Amount=-0.0), None),
    "Amount at max, int": (_feat(Amount=1_000_000), None),
    "Amount at max, float": (_feat(Amount=1e6), None),
    "Amount null": (_feat(Amount=None), None),
    "Amount absent": (_feat(), None),
    "unranged feature far out": (_feat(Seniority=-1e15), None),
    "Income at min": (_feat(Income=-1), None),
    "Income at a huge max, int": (_feat(Income=2**60), None),
    "Income below a huge max, int": (_feat(Income=2**60 - 1), None),
    "Income at a huge max, float": (_feat(Income=2.0**60), None),
    "unicode name at max": (_feat(**{"Z\u00e9\U0001f600": 10}), None),
    "Amount below min": (_feat(Amount=-1), "out_of_range"),
    "Amount -1e308": (_feat(Amount=-1e308), "out_of_range"),
    "Amount a hair below min": (_feat(Amount=-5e-324), "out_of_range"),
    "Amount above max, int": (_feat(Amount=1_000_001), "out_of_range"),
    "Amount a hair above max": (_feat(Amount=1000000.0000000001), "out_of_range"),
    "Amount 1e308": (_feat(Amount=1e308), "out_of_range"),
    "Income below min": (_feat(Income=-1.5), "out_of_range"),
    "Income above a huge max, int": (_feat(Income=2**60 + 1), "out_of_range"),
    "Income int64 max": (_feat(Income=2**63 - 1), "out_of_range"),
    "unicode name above max": (_feat(**{"Z\u00e9\U0001f600": 10.5}), "out_of_range"),
    "two out of range": (_feat(Income=-3, Amount=-2), "out_of_range"),
    "type error before range": (_feat(Amount="-1", Income=-3), "feature_type"),
    "unknown before range": (_feat(Colour="red", Amount=-1), "unknown_feature"),
    "at earliest": (_at(EARLIEST), None),
    "at latest": (_at(LATEST), None),
    "at latest, other offset": (_at(LATEST.astimezone(timezone(timedelta(hours=-5)))), None),
    "a microsecond too old": (_at(EARLIEST - timedelta(microseconds=1)), "out_of_range"),
    "a microsecond too far ahead": (_at(LATEST + timedelta(microseconds=1)), "out_of_range"),
    "too far ahead, other offset": (
        _raw(_event(event_time="2026-11-23T14:00:00.000001+01:00")),
        "out_of_range",
    ),
    "year 9999": (_raw(_event(event_time="9999-12-31T00:00:00Z")), "out_of_range"),
    "year 1": (_raw(_event(event_time="0001-01-01T00:00:00Z")), "out_of_range"),
    "unix time 0": (_raw(_event(event_time=0)), "out_of_range"),
    "feature range before window": (
        _raw(_event(event_time="9999-12-31T00:00:00Z", features={"Amount": -1})),
        "out_of_range",
    ),
    "bad time shape before window": (
        _raw(_event(event_time="9999-12-31T23:59:59-01:00")),
        "validation",
    ),
}


@pytest.mark.parametrize("name", list(RANGED))
def test_ranged_corpus_matches_validate_event(name: str) -> None:
    raw, reason = RANGED[name]
    want = _expected(raw, ranged=True)
    assert (want.reason if isinstance(want, EventError) else None) == reason
    if reason == "out_of_range":
        assert isinstance(want, EventError) and want.stage == "validate"
        assert _expected(raw) is not want and not isinstance(_expected(raw), EventError)
    _check_batch([raw], ranged=True)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (_feat(Amount=-1e308), "feature 'Amount' = -1e+308 is below the minimum 0"),
        (_feat(Amount=1_000_001), "feature 'Amount' = 1000001 is above the maximum 1000000"),
        (_feat(Income=-1.5), "feature 'Income' = -1.5 is below the minimum -1"),
        (
            _feat(Income=2**60 + 1),
            "feature 'Income' = 1152921504606846977 is above the maximum 1.152921504606847e+18",
        ),
        (_feat(Income=-3, Amount=-2), "feature 'Amount' = -2 is below the minimum 0"),
        (
            _raw(_event(event_time="9999-12-31T00:00:00Z")),
            "event_time = 9999-12-31T00:00:00+00:00 is after the latest accepted "
            "2026-11-23T13:00:00+00:00 (max_future 1h)",
        ),
        (
            _raw(_event(event_time="0001-01-01T00:00:00Z")),
            "event_time = 0001-01-01T00:00:00+00:00 is before the earliest accepted "
            "2016-11-25T12:00:00+00:00 (max_age 3650d)",
        ),
    ],
)
def test_out_of_range_messages_name_feature_value_and_bound(raw: bytes, message: str) -> None:
    (_, error), *_ = _check_batch([raw], ranged=True).errors
    assert (error.reason, error.stage, str(error)) == ("out_of_range", "validate", message)


def test_ranged_mixed_batch_keeps_input_order() -> None:
    """The ranged corpus among the plain one (whose reasons _check_batch takes from
    validate_event: some of its good events are out of range here)."""
    reasons = [reason for _, reason in RANGED.values()]
    raws = [raw for raw, _ in RANGED.values()] + [raw for raw, _ in CORPUS.values()]
    batch = _check_batch(raws, ranged=True)
    errors = [(i, e.reason) for i, e in batch.errors if i < len(reasons)]
    assert errors == [(i, r) for i, r in enumerate(reasons) if r is not None]
    assert [i for i in batch.ok if i < len(reasons)] == [
        i for i, r in enumerate(reasons) if r is None
    ]


def test_in_range_events_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*_: object) -> None:
        raise AssertionError("fell back to validate_event")

    monkeypatch.setattr(batch_decode, "validate_event", never)
    raws = [
        GOOD,
        _feat(Amount=0, Income=-1),
        _feat(Amount=1e6, **{"Z\u00e9\U0001f600": 10}),
        _at(EARLIEST),
        _at(LATEST),
    ]
    batch = _decoder(ranged=True).decode(raws, now=NOW)
    assert batch.errors == [] and batch.ok == list(range(len(raws)))


def test_only_suspect_rows_are_decoded_again(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []

    def counting(raw: bytes, *args: Any) -> Event:
        calls.append(raw)
        return validate_event(raw, *args)

    monkeypatch.setattr(batch_decode, "validate_event", counting)
    low, late = _feat(Amount=-1), _at(LATEST + timedelta(seconds=1))
    raws = [GOOD] * 50 + [low] + [GOOD] * 50 + [late] + [GOOD] * 10
    batch = _decoder(ranged=True).decode(raws, now=NOW)
    assert [(i, e.reason) for i, e in batch.errors] == [(50, "out_of_range"), (101, "out_of_range")]
    assert len(batch.columns) == len(raws) - 2 and sorted(calls) == sorted([low, late])
    assert batch.columns.features["Amount"] == [800] * len(batch.ok)


def test_a_bad_time_sends_only_its_own_record_to_validate_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[bytes] = []

    def counting(raw: bytes, *args: Any) -> Event:
        calls.append(raw)
        return validate_event(raw, *args)

    monkeypatch.setattr(batch_decode, "validate_event", counting)
    no_day = _raw(_event(event_time="2026-02-30T12:00:00Z"))  # the plain shape, no such date
    odd = _raw(_event(event_time="2026-11-23 12:00:00Z"))  # not the plain shape
    other = _at(NOW.astimezone(timezone(timedelta(hours=-5))))  # a good one, not in UTC
    raws = [GOOD] * 20 + [no_day] + [other] + [GOOD] * 20 + [odd] + [GOOD] * 5
    batch = _decoder(ranged=True).decode(raws, now=NOW)
    assert [(i, e.reason) for i, e in batch.errors] == [(20, "validation")]
    assert sorted(calls) == sorted([no_day, odd])  # "odd" is valid, just not the plain shape
    assert len(batch.ok) == len(raws) - 1
    when = batch.columns.event_time[batch.ok.index(21)]
    assert when == NOW and when.tzinfo is UTC


def test_without_a_contract_nothing_is_out_of_range() -> None:
    raws = [RANGED[name][0] for name in ("Amount -1e308", "year 9999", "year 1")]
    assert len(_check_batch(raws).ok) == 3


def test_window_is_read_at_the_current_time_by_default() -> None:
    now = datetime.now(UTC)
    raws = [_at(now - timedelta(days=1)), _at(now + timedelta(hours=2))]
    errors = _decoder(ranged=True).decode(raws).errors
    assert [(i, e.reason) for i, e in errors] == [(1, "out_of_range")]
    with pytest.raises(EventError, match="after the latest accepted"):
        validate_event(raws[1], MAX, _checker(True))
    assert validate_event(raws[0], MAX, _checker(True)).event_time <= now


def test_window_wider_than_the_calendar_is_open() -> None:
    checker = FeatureChecker(KINDS, SPEC, window=TimeWindow(1e12, 1e12))
    assert validate_event(RANGED["year 9999"][0], MAX, checker, NOW).event_time.year == 9999
    assert validate_event(RANGED["year 1"][0], MAX, checker, NOW).event_time.year == 1


@pytest.mark.parametrize(
    ("ranges", "needle"),
    [
        ({"Home": (0.0, 1.0)}, "numeric column: 'Home' is categorical"),
        ({"Colour": (0.0, 1.0)}, "'Colour' is None"),
        ({"Amount": (2.0, 1.0)}, "min 2.0 > max 1.0"),
        ({"Amount": (float("nan"), None)}, "NaN"),
    ],
)
def test_bad_ranges_are_refused(
    ranges: dict[str, tuple[float | None, float | None]], needle: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(needle)):
        BatchDecoder(KINDS, SPEC, MAX, ranges=ranges)


# --------------------------------------------------------------------------------------------
# Canonical JSON: msgspec's bytes equal the stdlib's where the fast path uses them
# --------------------------------------------------------------------------------------------


def test_msgspec_escapes_every_character_like_the_stdlib() -> None:
    text = "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF)
    fast = msgspec.json.Encoder(order="sorted")
    value = {text: text, "a": text[:300], "\u00e9": 1, "z": 2, "\U0001f600": 3, "\uffff": 4}
    assert fast.encode(value) == canonical_json(value)


@settings(max_examples=600, deadline=None)
@given(
    st.floats(min_value=1e-4, max_value=1e16, exclude_max=True)
    | st.floats(min_value=-1e16, max_value=-1e-4, exclude_min=True)
    | st.sampled_from([0.0, -0.0, 1e-4, -1e-4, 9999999999999998.0, 0.1, 1 / 3])
)
def test_msgspec_prints_plain_floats_like_the_stdlib(value: float) -> None:
    assert msgspec.json.encode([value]) == canonical_json([value])


@settings(max_examples=150, deadline=None)
@given(st.floats(min_value=-1e-4, max_value=1e-4, exclude_min=True, exclude_max=True))
def test_msgspec_small_floats_are_spotted(value: float) -> None:
    """A float below 1e-4 that may print unlike the stdlib has 0.0000 or e- in msgspec's JSON."""
    encoded = msgspec.json.encode(value)
    assert value == 0.0 or b"0.0000" in encoded or b"e-" in encoded


@pytest.mark.parametrize(
    "value",
    [1e16, -1e16, 1e22, 1e-4, 9.99e-5, 1e-5, -1e-5, 1e-7, 5e-324, 1.7976931348623157e308, -0.0],
)
def test_any_float_hashes_as_the_stdlib(value: float) -> None:
    _check_batch([_raw(_event(features={"Amount": value, "Home": "e-1"}))])
    _check_batch([_raw(_event(features={"Amount": value, "Z\u00e9\U0001f600": 2.5}))])


# --------------------------------------------------------------------------------------------
# Property: random near-valid and mutated events
# --------------------------------------------------------------------------------------------

names = st.sampled_from([*KINDS, "Colour", "", "x" * 129, "N\x00"])
values = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**65), max_value=2**65)
    | st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) + 1, 2**64 - 1, 0, -0.0])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=6)
    | st.sampled_from(["rent", "\x00", '"', 'a":', "\\", "\u00e9\U0001f600"])
)
offsets = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(
    lambda m: timezone(timedelta(minutes=m))
)
times = (
    st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    ).map(lambda t: t.isoformat())
    | st.builds(
        lambda t, tz, spec: t.replace(tzinfo=tz).isoformat(timespec=spec),
        st.datetimes(),
        offsets,
        st.sampled_from(["auto", "seconds", "milliseconds", "microseconds"]),
    )
    | st.builds(
        lambda t: t.isoformat().replace("+00:00", "Z"), st.datetimes(timezones=st.just(UTC))
    )
    | st.sampled_from(
        [
            "2026-11-23T12:00:00",
            "2026-11-23",
            "2026-11-23T12:00Z",
            "2026-11-23T12:00:00.1234567Z",
            "2026-11-23T12:00:00+0200",
            "2026-11-23T12:00:00+02",
            "20261123T120000Z",
            "2026-11-23T12:00:00,5Z",
            "2026-11-23T24:00:00Z",
            "2026-11-23T12:00:60Z",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "2026-11-23T12:00:00z",
            "2026-11-23T12:00:00\u0660Z",
        ]
    )
    | st.text(max_size=30)
)
ids = st.text(max_size=10) | st.sampled_from(["", "x" * 128, "x" * 129, "x" * 257, "a\x00"])
events = st.fixed_dictionaries(
    {
        "event_id": ids,
        "entity_id": ids,
        "event_time": times,
        "features": st.dictionaries(names, values, max_size=6),
    },
    optional={
        "schema_version": st.sampled_from([1, 2, 0, True, 1.0, "1", None]),
        "event_type": ids,
        "producer": st.none() | ids,
        "colour": st.just("red"),
    },
)


# near-valid events: the contract's types and limits, the spec's kinds


def _time_text(when: datetime, offset: timezone, digits: int, zulu: bool) -> str:
    local = when.replace(tzinfo=offset)
    text = local.isoformat(timespec="seconds")[:19]
    if digits:
        text += "." + f"{local.microsecond:06d}"[:digits]
    if zulu and offset.utcoffset(None) == timedelta(0):
        return text + "Z"
    return text + local.isoformat()[-6:]


good_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=12,
)
# any time, or one near the ranged contract's window (an hour of slack each side)
near_window = st.datetimes(
    min_value=(EARLIEST - timedelta(hours=1)).replace(tzinfo=None),
    max_value=(LATEST + timedelta(hours=1)).replace(tzinfo=None),
)
good_times = st.builds(
    _time_text,
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)) | near_window,
    offsets | st.just(UTC),
    st.integers(min_value=0, max_value=6),
    st.booleans(),
)
int64 = st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1)
finite = st.floats(allow_nan=False, allow_infinity=False)
# the ranged contract's bounds and their neighbours
near_bounds = st.sampled_from(
    [b + d for b in (0, -1, 10, 10**6) for d in (-1, 0, 1)]
    + [0.0, -0.0, -1.0, 10.0, 1e6, 5e-324, -5e-324, 1000000.0000000001, -1.0000000000000002]
    + [2**60 + d for d in (-2, -1, 0, 1, 2)]
    + [2.0**60, 1.1529215046068467e18, 1.152921504606847e18]
)
KIND_VALUES = {
    "numeric": st.none() | int64 | finite | near_bounds,
    "categorical": st.none() | good_text | int64,
    "boolean": st.none() | st.booleans() | good_text,
}
good_events = st.fixed_dictionaries(
    {
        "event_id": good_text,
        "entity_id": good_text,
        "event_time": good_times,
        "features": st.fixed_dictionaries(
            {}, optional={name: KIND_VALUES[kind] for name, kind in KINDS.items()}
        ),
    },
    optional={
        "schema_version": st.just(1),
        "event_type": good_text,
        "producer": st.none() | good_text,
    },
)

_FEATURES = re.compile(rb'"features"\s*:\s*\{')


@st.composite
def raw_events(draw: st.DrawFn) -> bytes:
    event = draw(st.one_of(good_events, good_events, events))
    raw = json.dumps(
        event,
        allow_nan=True,
        ensure_ascii=draw(st.booleans()),
        indent=draw(st.sampled_from([None, 0, 2])),
        separators=draw(st.sampled_from([None, (",", ":"), (", ", " : ")])),
        sort_keys=draw(st.booleans()),
    ).encode()
    mutation = draw(st.sampled_from(["none"] * 6 + ["dup", "dup_feature", "bytes"]))
    if mutation == "dup":
        key = draw(st.sampled_from(["event_id", "features", "schema_version", "producer"]))
        raw = raw.replace(b"{", f'{{"{key}": {json.dumps(event.get(key))},'.encode(), 1)
    elif mutation == "dup_feature" and event["features"]:
        name, value = draw(st.sampled_from(sorted(event["features"].items())))  # type: ignore[attr-defined]
        extra = json.dumps({name: value}, allow_nan=True)[1:-1].encode()
        raw = _FEATURES.sub(lambda m: m.group(0) + extra + b",", raw, count=1)
    elif mutation == "bytes" and raw:
        at = draw(st.integers(min_value=0, max_value=len(raw) - 1))
        raw = raw[:at] + draw(st.binary(min_size=0, max_size=3)) + raw[at + 1 :]
    return raw


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(raw_events(), min_size=1, max_size=4))
def test_random_events_match_validate_event(raws: list[bytes]) -> None:
    _check_batch(raws)
    _check_batch(raws, ranged=True)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_match_validate_event(raw: bytes) -> None:
    _check_batch([raw, GOOD, raw], max_bytes=256)
