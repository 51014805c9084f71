"""Wire contracts: strict event parsing, records, dead letters and the committed schema files."""

from __future__ import annotations

import base64
import contextlib
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from decisioning.contract_files import (
    DEFAULT_DIR,
    RECORDS,
    check_contract_files,
    contract_files,
    examples,
    write_contract_files,
)
from decisioning.contracts import Decision, Event, EventError, Outcome, dead_letter, encode_record
from decisioning.validation import (
    EventValidationError,
    InvalidJsonError,
    NonFiniteError,
    NotObjectError,
    NotUtf8Error,
    OversizeError,
    SchemaVersionError,
    parse_event,
)

MAX = 64 * 1024


def _event(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "schema_version": 1,
        "event_id": "e-1",
        "entity_id": "cust-1",
        "event_time": "2026-11-23T12:00:00Z",
        "features": {"Amount": 800, "Income": 129.5, "Home": "rent", "Flag": True, "X": None},
    }
    base.update(overrides)
    return base


def _raw(obj: object) -> bytes:
    return json.dumps(obj).encode()


def test_valid_event_parses_with_types_kept() -> None:
    event = parse_event(_raw(_event()), MAX)
    assert event.event_type == "credit_application"
    assert event.features == {
        "Amount": 800,
        "Income": 129.5,
        "Home": "rent",
        "Flag": True,
        "X": None,
    }
    assert type(event.features["Amount"]) is int
    assert type(event.features["Flag"]) is bool
    assert event.event_time == datetime(2026, 11, 23, 12, tzinfo=UTC)


def test_schema_version_may_be_absent() -> None:
    data = _event()
    del data["schema_version"]
    assert parse_event(_raw(data), MAX).schema_version == 1


def test_event_time_is_normalised_to_utc() -> None:
    event = parse_event(_raw(_event(event_time="2026-11-23T14:00:00+02:00")), MAX)
    assert event.event_time.utcoffset() == timedelta(0)
    assert event.event_time == datetime(2026, 11, 23, 12, tzinfo=UTC)


def test_encode_roundtrip() -> None:
    event = parse_event(_raw(_event()), MAX)
    assert parse_event(encode_record(event), MAX) == event


CORPUS: list[tuple[str, bytes, type[EventError]]] = [
    ("empty", b"", InvalidJsonError),
    ("garbage", b"not json", InvalidJsonError),
    ("truncated", b'{"event_id": "e', InvalidJsonError),
    ("trailing", _raw(_event()) + b" x", InvalidJsonError),
    ("duplicate key", b'{"event_id": "a", "event_id": "b"}', InvalidJsonError),
    ("bom", b"\xef\xbb\xbf" + _raw(_event()), InvalidJsonError),
    ("deep nesting", b"[" * 100_000 + b"]" * 100_000, InvalidJsonError),
    ("huge int literal", b'{"a": ' + b"9" * 5000 + b"}", InvalidJsonError),
    ("latin-1", '{"entity_id": "M\u00fcller"}'.encode("latin-1"), NotUtf8Error),
    ("lone continuation", b"\x80\x81", NotUtf8Error),
    ("NaN literal", _raw(_event()).replace(b"129.5", b"NaN"), NonFiniteError),
    ("Infinity literal", _raw(_event()).replace(b"129.5", b"-Infinity"), NonFiniteError),
    ("overflowing float", _raw(_event()).replace(b"129.5", b"1e999"), NonFiniteError),
    ("array", b"[1, 2]", NotObjectError),
    ("string", b'"event"', NotObjectError),
    ("null", b"null", NotObjectError),
    ("schema_version 2", _raw(_event(schema_version=2)), SchemaVersionError),
    ("schema_version '1'", _raw(_event(schema_version="1")), SchemaVersionError),
    ("schema_version true", _raw(_event(schema_version=True)), SchemaVersionError),
    ("schema_version 1.0", _raw(_event(schema_version=1.0)), SchemaVersionError),
    (
        "missing event_id",
        _raw({k: v for k, v in _event().items() if k != "event_id"}),
        EventValidationError,
    ),
    (
        "missing features",
        _raw({k: v for k, v in _event().items() if k != "features"}),
        EventValidationError,
    ),
    ("extra field", _raw(_event(colour="red")), EventValidationError),
    ("empty event_id", _raw(_event(event_id="")), EventValidationError),
    ("long event_id", _raw(_event(event_id="x" * 129)), EventValidationError),
    ("event_id int", _raw(_event(event_id=17)), EventValidationError),
    ("features list", _raw(_event(features=[1, 2])), EventValidationError),
    ("nested feature", _raw(_event(features={"a": {"b": 1}})), EventValidationError),
    ("list feature", _raw(_event(features={"a": [1]})), EventValidationError),
    ("naive time", _raw(_event(event_time="2026-11-23T12:00:00")), EventValidationError),
    ("bad time", _raw(_event(event_time="yesterday")), EventValidationError),
    ("int64 overflow", _raw(_event(features={"a": 2**64})), EventValidationError),
]


@pytest.mark.parametrize(
    ("raw", "error"), [(raw, err) for _, raw, err in CORPUS], ids=[c[0] for c in CORPUS]
)
def test_malformed_corpus(raw: bytes, error: type[EventError]) -> None:
    with pytest.raises(error) as info:
        parse_event(raw, 10_000_000)
    assert info.value.reason == error.reason
    assert isinstance(info.value, ValueError)


def test_oversize_checked_first() -> None:
    raw = _raw(_event())
    assert parse_event(raw, len(raw)).event_id == "e-1"
    with pytest.raises(OversizeError) as info:
        parse_event(raw, len(raw) - 1)
    assert info.value.reason == "oversize"


def test_validation_error_lists_fields() -> None:
    with pytest.raises(EventValidationError) as info:
        parse_event(_raw(_event(colour="red", event_id="")), MAX)
    assert "colour" in str(info.value) and "event_id" in str(info.value)
    assert {e["type"] for e in info.value.errors} >= {"extra_forbidden"}


def test_reasons_are_distinct() -> None:
    reasons = [err.reason for _, _, err in CORPUS] + [OversizeError.reason]
    assert set(reasons) == {
        "invalid_json",
        "not_utf8",
        "non_finite",
        "not_object",
        "schema_version",
        "validation",
        "oversize",
    }


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_raise_only_event_errors(raw: bytes) -> None:
    with contextlib.suppress(EventError):
        parse_event(raw, 256)


json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "schema_version",
                "event_id",
                "entity_id",
                "event_time",
                "features",
                "producer",
                "event_type",
                "other",
            ]
        ),
        json_values,
    )
)
def test_random_json_objects_raise_only_event_errors(obj: dict[str, object]) -> None:
    raw = json.dumps(obj, allow_nan=True).encode()
    try:
        event = parse_event(raw, MAX)
    except EventError:
        return
    assert event.schema_version == 1


def test_event_model_rejects_non_finite_features() -> None:
    with pytest.raises(ValidationError, match="not a finite number"):
        Event(
            event_id="e",
            entity_id="c",
            event_time=datetime(2026, 1, 1, tzinfo=UTC),
            features={"x": float("nan")},
        )


def test_records_are_frozen_and_strict() -> None:
    event = parse_event(_raw(_event()), MAX)
    with pytest.raises(ValidationError):
        event.event_id = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        Outcome(
            event_id="e",
            entity_id="c",
            label="bad",
            observed_at=datetime(2026, 1, 1, tzinfo=UTC),
            extra=1,
        )  # type: ignore[call-arg]


def test_decision_validates_score_and_hash() -> None:
    good = examples()["decision"]
    assert isinstance(good, Decision)
    data = good.model_dump()
    for field, bad in (
        ("score", 1.5),
        ("score", float("nan")),
        ("feature_hash", "abc"),
        ("arm", "blue"),
    ):
        with pytest.raises(ValidationError):
            Decision.model_validate({**data, field: bad})
    shifted = Decision.model_validate(
        {**data, "decided_at": datetime(2026, 11, 23, 13, tzinfo=timezone(timedelta(hours=1)))}
    )
    assert shifted.decided_at.utcoffset() == timedelta(0)


def test_dead_letter_from_event_error() -> None:
    raw = b"\xff" * 100
    try:
        parse_event(raw, MAX)
    except EventError as exc:
        dl = dead_letter(
            exc,
            raw,
            stage="decode",
            source_topic="events",
            source_partition=3,
            source_offset=42,
            failed_at=datetime(2026, 1, 1, tzinfo=UTC),
            raw_limit=10,
        )
    assert dl.reason == "not_utf8"
    assert dl.error_class == "NotUtf8Error"
    assert dl.raw_size == 100 and dl.raw_truncated
    assert base64.b64decode(dl.raw) == b"\xff" * 10
    other = dead_letter(
        RuntimeError("boom"),
        b"{}",
        stage="score",
        source_topic="events",
        source_partition=0,
        source_offset=0,
        failed_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert other.reason == "score_error" and not other.raw_truncated


def test_committed_contract_files_are_up_to_date() -> None:
    stale = check_contract_files(DEFAULT_DIR)
    assert not stale, (
        f"docs/contracts is out of date ({stale}); run: python -m decisioning.contract_files"
    )


def test_write_then_check(tmp_path: Path) -> None:
    assert check_contract_files(tmp_path)
    write_contract_files(tmp_path)
    assert check_contract_files(tmp_path) == []


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_example_validates_against_schema(name: str) -> None:
    files = contract_files()
    schema = json.loads(files[f"{name}.schema.json"])
    example = json.loads(files[f"examples/{name}.json"])
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(example)
    # and the example parses back into the record
    assert RECORDS[name].model_validate_json(json.dumps(example)) == examples()[name]


def test_schema_rejects_extra_fields() -> None:
    schema = json.loads(contract_files()["event.schema.json"])
    example = json.loads(contract_files()["examples/event.json"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**example, "unexpected": 1}, schema)


@pytest.mark.parametrize(
    "change",
    [
        {"entity_id": "ent\u0000x"},
        {"event_id": "e\u00001"},
        {"features": {"Home": "r\u0000ent"}},
        {"features": {"Ho\u0000me": 1}},
    ],
    ids=["entity_id", "event_id", "feature value", "feature name"],
)
def test_a_nul_character_is_a_validation_error(change: dict[str, object]) -> None:
    raw = json.dumps(_event(**change)).encode()  # JSON spells NUL as \\u0000
    with pytest.raises(EventValidationError) as err:
        parse_event(raw, MAX)
    letter = dead_letter(
        err.value,
        raw,
        source_topic="events",
        source_partition=0,
        source_offset=0,
        failed_at=datetime(2026, 1, 1, tzinfo=UTC),
        source_key="k\u0000",
    )
    assert letter.stage == "validate" and letter.reason == "validation"
    assert "\x00" not in letter.error_message and "\x00" not in (letter.source_key or "")
