"""Feature-spec parsing, validation errors and hashing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml

from decisioning.validation import FeatureChecker
from models.spec import (
    FeatureSpec,
    SpecError,
    available_specs,
    load_spec,
    spec_from_mapping,
    spec_from_yaml,
    spec_hash,
)

BASE = {
    "name": "t",
    "entity_key": {"column": "id"},
    "label": {"column": "y", "positive": 1},
    "columns": [{"name": "a", "type": "numeric"}, {"name": "b", "type": "categorical"}],
}


def _with(**changes: object) -> dict[str, object]:
    data = yaml.safe_load(yaml.safe_dump(BASE))
    data.update(changes)
    return data


def test_packaged_credit_spec(credit_spec: FeatureSpec) -> None:
    assert "credit_data" in available_specs()
    assert credit_spec.label.column == "Status"
    assert credit_spec.label.positive == "bad"
    assert credit_spec.entity_key.synthesize_format.format(123) == "app-000123"
    assert len(credit_spec.feature_names) == 13
    assert credit_spec.column("Records").type == "boolean"
    assert credit_spec.column("Income").missing.indicator is True
    assert credit_spec.column("Home").resolved_strategy == "category"


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"columns": [{"name": "a", "type": "numerc"}]}, "columns.0.type"),
        ({"label": {"column": "y"}}, "label.positive"),
        (
            {"columns": [{"name": "a", "type": "numeric", "missing": {"strategy": "constant"}}]},
            "columns.0.missing",
        ),
        (
            {"columns": [{"name": "b", "type": "categorical", "missing": {"strategy": "median"}}]},
            "columns.0",
        ),
        ({"columns": [{"name": "a", "type": "numeric"}] * 2}, "duplicate column names"),
        ({"columns": [{"name": "y", "type": "numeric"}]}, "label column 'y'"),
        ({"colums": []}, "colums"),
        ({"entity_key": {"column": "id", "synthesize_format": "app-{x}"}}, "synthesize_format"),
        ({"columns": []}, "at least one feature column"),
        ({"name": "bad name!"}, "name"),
    ],
)
def test_validation_errors_name_the_field(changes: dict[str, object], needle: str) -> None:
    with pytest.raises(SpecError) as info:
        spec_from_mapping(_with(**changes))
    assert needle in str(info.value)


def test_yaml_errors_are_spec_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="not valid YAML"):
        spec_from_yaml("name: [unclosed")
    with pytest.raises(SpecError, match="top level must be a mapping"):
        spec_from_yaml("- a\n- b\n")
    with pytest.raises(SpecError, match="not found"):
        load_spec(tmp_path / "nope.yaml")
    with pytest.raises(SpecError, match="unknown feature spec 'nope'"):
        load_spec("nope")


def test_user_spec_file_round_trip(tmp_path: Path, credit_spec: FeatureSpec) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(credit_spec.to_yaml())
    again = load_spec(path)
    assert again == credit_spec
    assert spec_hash(again) == credit_spec.hash


def test_hash_is_canonical_and_sensitive() -> None:
    a = spec_from_mapping(_with())
    reordered = {k: BASE[k] for k in reversed(list(BASE))}
    assert spec_hash(spec_from_mapping(reordered)) == spec_hash(a)
    assert len(spec_hash(a)) == 64
    changed = spec_from_mapping(_with(label={"column": "y", "positive": 0}))
    assert spec_hash(changed) != spec_hash(a)


# --------------------------------------------------------------------------------------------
# Ranges and the event_time window
# --------------------------------------------------------------------------------------------


def _ranged(**column: object) -> dict[str, object]:
    return _with(columns=[{"name": "a", "type": "numeric", **column}])


def test_ranges_parse_and_round_trip() -> None:
    spec = spec_from_mapping(
        _with(
            columns=[
                {"name": "a", "type": "numeric", "min": 0, "max": 2.5},
                {"name": "c", "type": "numeric", "max": -1},
                {"name": "b", "type": "categorical"},
            ]
        )
    )
    assert (spec.column("a").min, spec.column("a").max) == (0.0, 2.5)
    assert spec.ranges == {"a": (0.0, 2.5), "c": (None, -1.0)}
    assert spec.to_dict()["columns"][0]["min"] == 0.0
    again = spec_from_yaml(spec.to_yaml())
    assert again == spec and again.hash == spec.hash
    assert spec.hash != spec_from_mapping(_with()).hash


def test_equal_bounds_are_one_accepted_value() -> None:
    assert spec_from_mapping(_ranged(min=3, max=3)).ranges == {"a": (3.0, 3.0)}


@pytest.mark.parametrize(
    ("column", "needle"),
    [
        ({"min": 5, "max": 1}, "min 5.0 is greater than max 1.0"),
        ({"type": "categorical", "min": 0}, "only apply to numeric columns"),
        ({"type": "boolean", "max": 1}, "only apply to numeric columns"),
        ({"min": "0"}, "columns.0.min"),
        ({"max": True}, "columns.0.max"),
        ({"max": float("inf")}, "columns.0.max"),
        ({"min": float("nan")}, "columns.0.min"),
        ({"max": "1e9"}, "columns.0.max"),  # YAML 1.1 reads 1e9 as a string
    ],
)
def test_bad_ranges_are_rejected(column: dict[str, object], needle: str) -> None:
    with pytest.raises(SpecError) as info:
        spec_from_mapping(_ranged(**column))
    assert needle in str(info.value)


def test_event_time_window_defaults_reject_absurd_times_only() -> None:
    window = spec_from_mapping(_with()).event_time
    assert window.max_age == 3650 * 86400  # replays of years-old events still pass
    assert window.max_future == 3600
    assert window.max_age < (datetime.now(UTC) - datetime(1, 1, 1, tzinfo=UTC)).total_seconds()


@pytest.mark.parametrize(
    ("written", "seconds", "dumped"),
    [
        ("30d", 30 * 86400, "30d"),
        ("2w", 14 * 86400, "14d"),
        ("36h", 36 * 3600, "36h"),
        ("5m", 300, "5m"),
        (" 90s ", 90, "90s"),
        ("1.5h", 5400, "90m"),
        (90, 90, "90s"),
        (0.25, 0.25, 0.25),
        (1e-7, 1e-7, 1e-7),
        ("0.5s", 0.5, 0.5),
        (0, 0, "0s"),
        (None, None, None),
    ],
)
def test_event_time_durations(
    written: object, seconds: float | None, dumped: str | float | None
) -> None:
    spec = spec_from_mapping(_with(event_time={"max_age": written, "max_future": written}))
    assert spec.event_time.max_age == seconds and spec.event_time.max_future == seconds
    assert spec.to_dict()["event_time"] == {"max_age": dumped, "max_future": dumped}
    assert spec_from_yaml(spec.to_yaml()) == spec


def test_event_time_keeps_the_default_of_an_unset_side() -> None:
    window = spec_from_mapping(_with(event_time={"max_future": "5m"})).event_time
    assert (window.max_age, window.max_future) == (3650 * 86400, 300)


@pytest.mark.parametrize("bad", ["soon", "5y", "-1d", -1, True, "1e3s", float("inf"), [1]])
def test_bad_event_time_durations_are_rejected(bad: object) -> None:
    with pytest.raises(SpecError, match=r"event_time\.max_age"):
        spec_from_mapping(_with(event_time={"max_age": bad}))


def test_unknown_event_time_setting_is_rejected() -> None:
    with pytest.raises(SpecError, match=r"event_time\.max_agee"):
        spec_from_mapping(_with(event_time={"max_agee": "1d"}))


def test_specs_without_ranges_keep_their_hash(credit_spec: FeatureSpec) -> None:
    """A spec using neither ranges nor a custom window hashes as before they existed: the
    registry's metadata of models trained then holds that hash."""
    data = credit_spec.to_dict()
    assert "event_time" not in data  # the packaged spec writes the defaults explicitly
    for column in data["columns"]:
        column.pop("min", None)
        column.pop("max", None)
    assert spec_from_mapping(data).hash == (
        "c3fa37ac953adb1195684d4665acfdac0d86c2cec20fac8cb0d49c8010818d9d"
    )
    plain = spec_from_mapping(_with()).to_dict()
    assert "event_time" not in plain and all("min" not in c for c in plain["columns"])
    custom = spec_from_mapping(_with(event_time={"max_future": "5m"}))
    assert custom.to_dict()["event_time"] == {"max_age": "3650d", "max_future": "5m"}
    assert custom.hash != spec_from_mapping(_with()).hash


def test_credit_spec_declares_ranges(credit_spec: FeatureSpec) -> None:
    ranges = credit_spec.ranges
    for money in ("Expenses", "Income", "Assets", "Debt", "Amount", "Price"):
        assert ranges[money][0] == 0
    assert ranges["Age"] == (18, 120)
    assert set(ranges) == {c.name for c in credit_spec.columns if c.type == "numeric"}


def test_every_row_of_the_credit_table_is_in_range(
    credit_spec: FeatureSpec, credit_df: pd.DataFrame
) -> None:
    """The shipped dataset passes its own spec's ranges, on the worker's row check too."""
    assert len(credit_df) == 4454
    for name, (low, high) in credit_spec.ranges.items():
        values = credit_df[name].dropna()
        assert low is None or (values >= low).all(), name
        assert high is None or (values <= high).all(), name
    checker = FeatureChecker(
        {c.name: c.type for c in credit_spec.columns},
        credit_spec.name,
        ranges=credit_spec.ranges,
    )
    frame = credit_df[credit_spec.feature_names].astype(object)
    for row in frame.where(frame.notna(), None).to_dict("records"):
        checker({str(k): v.item() if hasattr(v, "item") else v for k, v in row.items()})
