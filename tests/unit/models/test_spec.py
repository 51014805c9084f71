"""Feature-spec parsing, validation errors and hashing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

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
