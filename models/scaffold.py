"""Infer a feature spec from a table, and write it as commented YAML.

``decisionflow flow init`` is built on these: given a table, its label column and the
positive class, :func:`infer_spec` types every column (numeric; boolean for two-valued yes/no,
true/false, y/n, t/f, 1/0 columns; categorical otherwise) and leaves out the columns that
cannot help a model (identifiers, constants, mostly missing), saying why. :func:`spec_yaml`
renders the result with a comment per column, ready for review and for ``models train``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pandas as pd
import yaml

from models.checks import (
    MAX_MISSING_SHARE,
    Problem,
    find_problems,
    id_like_reason,
    is_constant,
    non_numeric_strings,
)
from models.data import DataError, positive_mask, values_text, yaml_value
from models.spec import ColumnSpec, FeatureSpec, spec_from_mapping

__all__ = ["BOOLEAN_PAIRS", "column_notes", "infer_spec", "spec_name", "spec_yaml"]

BOOLEAN_PAIRS: tuple[tuple[str, str], ...] = (
    ("yes", "no"),
    ("true", "false"),
    ("y", "n"),
    ("t", "f"),
    ("1", "0"),
)
"""Two-valued columns whose values (any case) are one of these (true, false) pairs are boolean."""

_KEY_NAMES = ("row_id", "entity_id", "record_id")


def spec_name(text: str) -> str:
    """``text`` (a file stem) as a valid spec / flow name: other characters become ``_``."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_.-")
    return name or "flow"


def _token(value: Any) -> str:
    """A value as the encoder compares it: ``true`` for True, ``1`` for 1 and 1.0."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _positive_value(values: pd.Series, label: str, positive: str) -> str | int | bool:
    """The label value ``positive`` (a command-line string) names, typed as the column holds
    it (``"1"`` -> 1 in an integer column, ``"true"`` -> True in a boolean one)."""
    distinct = [v.item() if hasattr(v, "item") else v for v in values.dropna().unique()]
    for value in distinct:
        if isinstance(value, bool):
            if positive.lower() == _token(value):
                return value
        elif isinstance(value, int | float):
            try:
                same = float(positive) == float(value)
            except ValueError:
                same = False
            if same and not float(value).is_integer():
                raise DataError(
                    f"label column {label!r} holds fractional numbers: a label is a class "
                    "(strings, integers or booleans), not a measurement"
                )
            if same:
                return int(value)
        elif str(value) == positive:
            return str(value)
    seen = values_text(values.value_counts().to_dict())
    close = [str(v) for v in distinct if str(v).lower() == positive.lower()]
    fix = (
        f"the values differ only in case: use {close[0]!r}"
        if close
        else "use one of the values seen"
    )
    if not distinct:
        fix = "the label column holds no values: choose the column with the outcome"
    raise DataError(
        f"positive class {positive!r} is not a value of label column {label!r} "
        f"(seen: {seen}); fix: {fix}"
    )


def _boolean_pair(values: pd.Series) -> tuple[str, str] | None:
    """(true, false) tokens as they appear in a two-valued column, or None."""
    tokens = {_token(v.item() if hasattr(v, "item") else v) for v in values.dropna().unique()}
    if len(tokens) != 2:
        return None
    by_lower = {t.lower(): t for t in tokens}
    for true, false in BOOLEAN_PAIRS:
        if set(by_lower) == {true, false}:
            return by_lower[true], by_lower[false]
    return None


def _infer_column(name: str, series: pd.Series) -> tuple[dict[str, Any], Problem | None]:
    """The spec mapping of one kept column, and a warning about its type if any."""
    has_missing = bool(series.isna().any())
    column: dict[str, Any] = {"name": name}
    warning = None
    pair = _boolean_pair(series)
    if pair is not None:
        true, false = pair
        # JSON events may send true/false for the column: list them too
        column.update(
            type="boolean",
            true_values=list(dict.fromkeys([true, "true"])),
            false_values=list(dict.fromkeys([false, "false"])),
        )
    elif pd.api.types.is_numeric_dtype(series) or not non_numeric_strings(series):
        column["type"] = "numeric"
    else:
        column["type"] = "categorical"
        parsed = pd.to_numeric(series.dropna(), errors="coerce").notna()
        if len(parsed) and parsed.mean() >= 0.9:
            warning = Problem(
                name,
                "mostly numbers but some strings: declared categorical",
                values_text(non_numeric_strings(series)),
                "if the strings mean missing, empty them in the table and declare it numeric",
                "warning",
            )
    if has_missing and column["type"] != "categorical":
        column["missing"] = {"indicator": True}
    return column, warning


def _left_out_reason(series: pd.Series) -> str | None:
    if (reason := id_like_reason(series)) is not None:
        return f"looks like {reason}"
    missing = float(series.isna().mean()) if len(series) else 1.0
    if missing > MAX_MISSING_SHARE:
        return f"missing in {missing:.0%} of rows"
    if is_constant(series):
        return "the same value in every row"
    return None


def _entity_key(frame: pd.DataFrame, label: str, given: str | None) -> dict[str, Any]:
    """The entity_key mapping: ``given``, else the first unique ID-like column, else a
    synthesised key under a name the table does not use."""
    if given is not None:
        return {"column": given, "synthesize_format": f"{given}-{{:06d}}"}
    for name in frame.columns:
        series = frame[name]
        if (
            name != label
            and id_like_reason(series) is not None
            and not series.isna().any()
            and series.astype(str).is_unique
        ):
            return {"column": str(name)}
    taken = {str(c) for c in frame.columns}
    key = next((k for k in _KEY_NAMES if k not in taken), f"row_id_{len(taken)}")
    return {"column": key, "synthesize_format": "row-{:06d}"}


def infer_spec(
    frame: pd.DataFrame,
    *,
    name: str,
    label: str,
    positive: str,
    source: str,
    entity_key: str | None = None,
) -> tuple[FeatureSpec, list[Problem]]:
    """A feature spec for ``frame``, and the problems found (left-out columns as warnings).

    ``positive`` is matched against the label column's values as typed on a command line
    (``"1"`` finds integer 1). Raises :class:`~models.data.DataError` when the label column
    is absent, ``positive`` is not one of its values (naming a case-insensitive match) or no
    usable feature column remains; :class:`~models.spec.SpecError` for an invalid ``name``.
    """
    if label not in frame.columns:
        raise DataError(
            f"label column {label!r} is not in the table (columns: "
            f"{', '.join(map(str, frame.columns))})"
        )
    value = _positive_value(frame[label], label, positive)
    key = _entity_key(frame, label, entity_key)
    problems: list[Problem] = []
    columns: list[dict[str, Any]] = []
    for column in frame.columns:
        col = str(column)
        if col in (label, key["column"]):
            continue
        series = frame[column]
        reason = _left_out_reason(series)
        if reason is not None:
            seen = values_text(series.value_counts().head(3).to_dict(), 3)
            fix = "add it under columns if it is a real feature"
            problems.append(Problem(col, f"left out: {reason}", seen, fix, "warning"))
            continue
        spec_column, warning = _infer_column(col, series)
        columns.append(spec_column)
        problems += [warning] if warning else []
    if not columns:
        raise DataError(f"no usable feature column in the table: {[str(p) for p in problems]}")
    spec = spec_from_mapping(
        {
            "name": name,
            "description": f"Inferred from {source} ({len(frame)} rows).",
            "source": source,
            "entity_key": key,
            "label": {"column": label, "positive": value},
            "columns": columns,
        },
        f"inferred spec {name!r}",
    )
    problems += find_problems(spec, frame)
    n_values = int(frame[label].nunique())
    if n_values > 2:
        problems.append(
            Problem(
                label,
                f"{n_values} label values: every value but {yaml_value(value)} counts as negative",
                values_text(frame[label].value_counts().to_dict()),
                "check that this is the outcome you mean",
                "warning",
            )
        )
    return spec, problems


def _column_note(col: ColumnSpec, series: pd.Series) -> str:
    missing = float(series.isna().mean()) if len(series) else 0.0
    tail = f", {missing:.0%} missing" if missing else ""
    if col.type == "boolean":
        return f"two values: {col.true_values[0]} = true, {col.false_values[0]} = false{tail}"
    if col.type == "numeric":
        numbers = pd.to_numeric(series, errors="coerce")
        return f"numbers {yaml_value(numbers.min())} .. {yaml_value(numbers.max())}{tail}"
    return f"{int(series.nunique())} distinct values{tail}"


def column_notes(spec: FeatureSpec, frame: pd.DataFrame, problems: list[Problem]) -> dict[str, str]:
    """A comment per column for :func:`spec_yaml`: what the data holds, then its problems
    (a left-out column's note says why it was left out)."""
    notes: dict[str, str] = {}
    key, label = spec.entity_key.column, spec.label.column
    notes[key] = (
        f"entity key: {id_like_reason(frame[key]) or 'taken from the table'}"
        if key in frame.columns
        else "entity key: not in the table, synthesised from the row number"
    )
    if label in frame.columns and len(values := frame[label].dropna()):
        share = float(positive_mask(values, spec.label.positive).mean())
        notes[label] = f"positive class: {share:.1%} of rows"
    for col in spec.columns:
        if col.name in frame.columns:
            notes[col.name] = _column_note(col, frame[col.name])
    used = {label, *spec.feature_names}
    for problem in problems:
        name = problem.column
        extra = (
            f"{problem.severity}: {problem.message}"
            if name in used
            else problem.message.removeprefix("left out: ")
        )
        notes[name] = f"{notes[name]}; {extra}" if name in notes else extra
    return notes


def _flow(value: Any) -> str:
    """One YAML flow-style line (``{name: x, type: numeric}``), quoting what needs it."""
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10**6)
    return text.strip().removesuffix("...").strip()


def _comment(note: str | None) -> str:
    return f"  # {note}" if note else ""


def _line(key: str, value: Any, note: str | None = None) -> str:
    return f"{key}: {_flow(value)}{_comment(note)}"


def spec_yaml(spec: FeatureSpec, notes: Mapping[str, str] | None = None) -> str:
    """``spec`` as commented YAML (one flow-style line per column, settings at their defaults
    left out); loads back to an equal spec. ``notes`` maps column names to a comment: on the
    column's line, or, for names the spec does not use, in a "left out" list at the end."""
    notes = dict(notes or {})
    data = spec.to_dict()
    used = {spec.entity_key.column, spec.label.column, *spec.feature_names}
    lines = [
        f"# Feature spec {spec.name}: inferred by `decisionflow flow init`; review the types.",
        "# Check it against the data with `decisionflow flow validate --spec <this file>`.",
        _line("name", spec.name),
        _line("version", spec.version),
    ]
    if spec.description:
        lines.append(_line("description", spec.description))
    if spec.source:
        lines.append(_line("source", spec.source))
    lines.append(_line("entity_key", data["entity_key"], notes.get(spec.entity_key.column)))
    lines.append(_line("label", data["label"], notes.get(spec.label.column)))
    lines.append("columns:")
    for col in spec.columns:
        entry = {"name": col.name, "type": col.type}
        entry.update(col.model_dump(mode="json", exclude_defaults=True))
        lines.append(f"  - {_flow(entry)}{_comment(notes.get(col.name))}")
    left_out = [(name, note) for name, note in notes.items() if name not in used]
    if left_out:
        lines.append("# Left out (add a column back under `columns:` if it is a real feature):")
        lines += [f"#   {name}: {note}" for name, note in left_out]
    for key in ("event_time", "class_weight"):
        if key in data:
            lines.append(_line(key, data[key]))
    return "\n".join(lines) + "\n"
