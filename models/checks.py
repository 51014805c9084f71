"""Every problem of a table against its feature spec, named with the values behind it and a fix.

:func:`find_problems` is what ``decisionflow flow validate`` prints. Errors stop training
(training raises on them too: :func:`models.data.labels`, the encoder's ``fit``); warnings are
worth a look (a column that cannot help a model, or may hurt it). A feature missing in more
than half the rows is an error, not a warning: ``check_training_data`` refuses it::

    Home: 300 distinct values, more than max_categories 200 (seen: ...) -> raise max_categories...

The column tests (:func:`id_like_reason`, :func:`is_constant`, :func:`non_numeric_strings`)
are shared with :mod:`models.scaffold`, which leaves such columns out of an inferred spec.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from models.data import Issue, label_issue, positive_mask, values_text
from models.encoding import boolean_issue
from models.spec import ColumnSpec, FeatureSpec

__all__ = [
    "ID_UNIQUE_SHARE",
    "MAX_MISSING_SHARE",
    "MIN_ID_ROWS",
    "Problem",
    "Severity",
    "errors",
    "find_problems",
    "id_like_reason",
    "is_constant",
    "non_numeric_strings",
]

Severity = Literal["error", "warning"]

MIN_ID_ROWS = 20
"""Tables shorter than this have no ID-like columns (few rows are unique by chance)."""
ID_UNIQUE_SHARE = 0.95
"""A string column with at least this share of distinct values is ID-like (integers: all)."""
MAX_MISSING_SHARE = 0.5
"""A feature missing in more rows than this is refused by training (``check_training_data``)."""
_OFTEN_MISSING_SHARE = 0.2


@dataclass(frozen=True)
class Problem:
    """One problem of a column: ``column: message (seen: values_seen) -> fix``."""

    column: str
    message: str
    values_seen: str = ""
    fix: str = ""
    severity: Severity = "error"

    @classmethod
    def of(cls, column: str, issue: Issue, severity: Severity = "error") -> Problem:
        """The problem an :class:`~models.data.Issue` of ``column`` describes."""
        return cls(column, issue.message, issue.values_seen, issue.fix, severity)

    def __str__(self) -> str:
        seen = f" (seen: {self.values_seen})" if self.values_seen else ""
        fix = f" -> {self.fix}" if self.fix else ""
        return f"{self.column}: {self.message}{seen}{fix}"


def errors(problems: list[Problem]) -> list[Problem]:
    """The problems of severity ``error`` (those that stop training)."""
    return [p for p in problems if p.severity == "error"]


def _is_integer(series: pd.Series) -> bool:
    return pd.api.types.is_integer_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _is_text(values: pd.Series) -> bool:
    return bool(values.map(lambda v: isinstance(v, str)).all())


def id_like_reason(series: pd.Series) -> str | None:
    """Why the column looks like an identifier rather than a feature, or None.

    ID-like: integers counting up by one (row numbers), integers distinct in every row, or
    strings distinct in nearly every row (at least :data:`ID_UNIQUE_SHARE`). Amounts and
    other measurements are often nearly unique integers, hence "every row" for integers.
    """
    values = series.dropna()
    if len(series) < MIN_ID_ROWS or len(values) < ID_UNIQUE_SHARE * len(series):
        return None
    n_distinct = int(values.nunique())
    if _is_integer(values):
        ints = values.to_numpy(dtype=np.int64)
        if len(ints) == len(series) and bool((np.diff(ints) == 1).all()):
            return f"row numbers: consecutive integers {ints[0]}..{ints[-1]}"
        if n_distinct == len(values):
            return f"an identifier: a different integer in every row ({n_distinct} distinct)"
        return None
    if _is_text(values) and n_distinct >= ID_UNIQUE_SHARE * len(values):
        return f"an identifier: {n_distinct} distinct strings in {len(values)} rows"
    return None


def is_constant(series: pd.Series) -> bool:
    """At most one distinct non-missing value: nothing for a model to learn from."""
    return int(series.nunique(dropna=True)) <= 1


def non_numeric_strings(series: pd.Series) -> Counter[str]:
    """Counts of the non-missing values that are not numbers (``"n/a"``, ``"12,5"``...)."""
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return Counter()
    values = series.dropna()
    bad = values[pd.to_numeric(values, errors="coerce").isna()]
    return Counter(str(v) for v in bad)


def _label_problems(spec: FeatureSpec, frame: pd.DataFrame) -> list[Problem]:
    label = spec.label
    if label.column not in frame.columns:
        return [
            Problem(
                label.column,
                "the label column is not in the table",
                ", ".join(map(str, frame.columns[:20])),
                "set label.column to the column holding the outcome",
            )
        ]
    values = frame[label.column]
    problems: list[Problem] = []
    n_null = int(values.isna().sum())
    if n_null:
        problems.append(
            Problem(
                label.column,
                f"{n_null} row(s) have no label",
                fix="drop the unlabelled rows from the table (training refuses them)",
            )
        )
    known = values.dropna()
    issue = label_issue(known, label)
    if issue is not None:
        return [*problems, Problem.of(label.column, issue)]
    share = float(positive_mask(known, label.positive).mean())
    rarer = min(share, 1.0 - share)
    if rarer < label.min_share:
        problems.append(
            Problem(
                label.column,
                f"the rarer class is {rarer:.2%} of rows, below label.min_share {label.min_share}",
                values_text(known.value_counts().to_dict()),
                "add rows of the rarer class, or lower label.min_share if the rate is real",
            )
        )
    return problems


def _column_problems(columns: Iterable[ColumnSpec], frame: pd.DataFrame) -> list[Problem]:
    problems: list[Problem] = []
    for col in columns:
        series = frame[col.name]
        counts = series.value_counts(dropna=True)
        missing = float(series.isna().mean()) if len(series) else 0.0
        if col.type == "boolean" and (issue := boolean_issue(series, col)) is not None:
            problems.append(Problem.of(col.name, issue))
        if col.type == "numeric" and (strings := non_numeric_strings(series)):
            problems.append(
                Problem(
                    col.name,
                    "numeric column holds values that are not numbers",
                    values_text(strings),
                    "clean them in the table (empty for missing), or declare the column "
                    "type: categorical",
                )
            )
        if col.type == "categorical" and len(counts) > col.max_categories:
            problems.append(
                Problem(
                    col.name,
                    f"{len(counts)} distinct values, more than max_categories "
                    f"{col.max_categories}: the rarer ones all become <unk>",
                    values_text(counts.to_dict(), 5),
                    "raise max_categories (at most 250), group rare values, or leave it out",
                    "warning",
                )
            )
        if (reason := id_like_reason(series)) is not None:
            problems.append(
                Problem(
                    col.name,
                    f"looks like {reason}, not a feature",
                    values_text(counts.head(3).to_dict(), 3),
                    "leave it out of columns (or make it entity_key)",
                    "warning",
                )
            )
        elif is_constant(series) and missing < 1.0:
            problems.append(
                Problem(
                    col.name,
                    "the same value in every row: nothing to learn from",
                    values_text(counts.to_dict()),
                    "leave it out of columns",
                    "warning",
                )
            )
        if missing > MAX_MISSING_SHARE:
            problems.append(
                Problem(
                    col.name,
                    f"missing in {missing:.0%} of rows; training refuses features missing in "
                    f"more than {MAX_MISSING_SHARE:.0%}",
                    fix="leave it out of columns, or fill it in the table",
                )
            )
        elif missing > _OFTEN_MISSING_SHARE:
            problems.append(
                Problem(
                    col.name,
                    f"missing in {missing:.0%} of rows",
                    fix="check why; keep missing: {indicator: true} if missingness means something",
                    severity="warning",
                )
            )
    return problems


def find_problems(spec: FeatureSpec, frame: pd.DataFrame) -> list[Problem]:
    """Every problem of ``frame`` (the table as read, all its columns) against ``spec``.

    Errors: feature or label columns missing; label values missing, positive class absent or
    the only one, rarer class below ``label.min_share``; boolean columns holding unlisted
    values; numeric columns holding strings; features missing in more than half the rows.
    Warnings: ID-like, constant and often-missing features, categorical columns with more
    levels than ``max_categories``. Column problems come in spec order, after the label's.
    """
    absent = [c for c in spec.feature_names if c not in frame.columns]
    table_columns = ", ".join(map(str, frame.columns[:20]))
    problems = [
        Problem(
            name,
            "feature column is not in the table",
            table_columns,
            "fix the name in the spec, or remove the column from columns",
        )
        for name in absent
    ]
    problems += _label_problems(spec, frame)
    present = [c for c in spec.columns if c.name not in absent]
    return problems + _column_problems(present, frame)
