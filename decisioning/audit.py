"""Audit helpers: canonical feature hashes and decision change tables for replays."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence

import pandas as pd

from decisioning.contracts import FeatureValue

__all__ = ["ABSENT", "NO_GROUP", "canonical_json", "diff_decisions", "feature_hash"]

#: Decision label used in a change table for an event missing from one side of the diff.
ABSENT = "<absent>"
#: Group label in a change table for a missing grouping value (e.g. no segment).
NO_GROUP = "<none>"

# One encoder for every call: json.dumps builds a new one per call when given options.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical_json(value: object) -> bytes:
    """Canonical JSON bytes: sorted keys, no whitespace, UTF-8, NaN/Infinity rejected.

    Note that ``1`` and ``1.0`` encode differently; values are hashed as they arrived.
    """
    return _CANONICAL.encode(value).encode("utf-8")


def feature_hash(features: Mapping[str, FeatureValue], names: Iterable[str] | None = None) -> str:
    """sha256 hex of the canonical JSON of the features used.

    With ``names`` only those features are hashed (a name absent from ``features`` hashes as
    ``null``), so the hash covers exactly what the model and policy saw.
    """
    used = dict(features) if names is None else {name: features.get(name) for name in names}
    return hashlib.sha256(canonical_json(used)).hexdigest()


def diff_decisions(
    before: pd.DataFrame,
    after: pd.DataFrame,
    *,
    key: str = "event_id",
    by: Sequence[str] = (),
    decision_column: str = "decision",
) -> pd.DataFrame:
    """Change table between two decision sets on the same events (e.g. a policy replay).

    Joins ``before`` and ``after`` on ``key`` (outer; an event on one side only shows as
    ``<absent>``) and counts events per ``from_decision -> to_decision``, grouped by the ``by``
    columns (e.g. ``["arm"]`` or ``["segment"]``; taken from ``after``, else ``before``; a
    missing value is grouped as ``<none>``).
    Columns: ``*by, from_decision, to_decision, count, share, changed``; ``share`` is the
    count over its group's total. Rows are sorted by group, then by count descending.
    """
    for frame, side in ((before, "before"), (after, "after")):
        missing = {key, decision_column} - set(frame.columns)
        if missing:
            raise ValueError(f"{side} lacks columns {sorted(missing)}")
        if frame[key].duplicated().any():
            raise ValueError(f"{side} has duplicate {key} values")
    group_cols = list(by)
    left = before[[key, decision_column, *[c for c in group_cols if c in before.columns]]]
    right = after[[key, decision_column, *[c for c in group_cols if c in after.columns]]]
    merged = left.merge(right, on=key, how="outer", suffixes=("_before", "_after"))
    table = pd.DataFrame(
        {
            "from_decision": merged[f"{decision_column}_before"].fillna(ABSENT).astype(str),
            "to_decision": merged[f"{decision_column}_after"].fillna(ABSENT).astype(str),
        }
    )
    for col in group_cols:
        in_before, in_after = col in before.columns, col in after.columns
        if in_before and in_after:
            values = merged[f"{col}_after"].combine_first(merged[f"{col}_before"])
        elif in_after or in_before:
            values = merged[col]
        else:
            raise ValueError(f"column {col!r} is in neither frame")
        table[col] = values.astype(object).fillna(NO_GROUP).map(str)
    keys = [*group_cols, "from_decision", "to_decision"]
    counts = table.groupby(keys, dropna=False).size().reset_index(name="count")
    if group_cols:
        totals = counts.groupby(group_cols)["count"].transform("sum")
    else:
        totals = pd.Series(counts["count"].sum(), index=counts.index)
    counts["share"] = counts["count"] / totals
    counts["changed"] = counts["from_decision"] != counts["to_decision"]
    counts = counts.sort_values(
        [*group_cols, "count", "from_decision", "to_decision"],
        ascending=[True] * len(group_cols) + [False, True, True],
        kind="stable",
    ).reset_index(drop=True)
    return counts[[*group_cols, "from_decision", "to_decision", "count", "share", "changed"]]
