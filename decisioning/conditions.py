"""Vectorised evaluation of policy conditions over a batch of feature rows.

Semantics (documented in docs/policies.md):

* a value is missing when the feature is absent, ``null`` or NaN;
* every comparison with a missing value is false, for ``!=`` and ``not_in`` too: use
  ``is_missing`` to route missing values;
* comparisons are type-aware: numbers match numbers (``1 == 1.0``), strings match strings,
  booleans match booleans (``true`` never equals ``1``); ``<``, ``<=``, ``>``, ``>=`` are false
  for non-numeric values.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from decisioning.policy import ENTITY_ID, Condition

__all__ = ["column_values", "condition_mask", "conditions_mask"]

_Key = tuple[str, object]


def column_values(
    features: pd.DataFrame, name: str, entity_ids: NDArray[np.object_]
) -> NDArray[np.object_]:
    """The values of ``name`` for every row as an object array (``entity_id`` is reserved)."""
    if name == ENTITY_ID:
        return entity_ids
    if name in features.columns:
        return features[name].to_numpy(dtype=object)
    return np.full(len(features), None, dtype=object)


def _missing(values: NDArray[np.object_]) -> NDArray[np.bool_]:
    return np.asarray(pd.isna(values), dtype=bool)


def _numeric(values: NDArray[np.object_], missing: NDArray[np.bool_]) -> NDArray[np.float64]:
    out = np.full(len(values), np.nan, dtype=np.float64)
    for i, value in enumerate(values):
        if (
            not missing[i]
            and isinstance(value, int | float | np.number)
            and not isinstance(value, bool | np.bool_)
        ):
            out[i] = float(value)
    return out


def _key(value: object) -> _Key | None:
    if isinstance(value, bool | np.bool_):
        return ("bool", bool(value))
    if isinstance(value, int | float | np.number):
        return ("num", float(value))
    if isinstance(value, str):
        return ("str", value)
    return None


def _member(
    values: NDArray[np.object_], missing: NDArray[np.bool_], wanted: set[_Key]
) -> NDArray[np.bool_]:
    strings = {k[1] for k in wanted if k[0] == "str"}
    return np.fromiter(  # plain strings (the common case) skip the key tuple
        (
            v in strings if type(v) is str else not m and _key(v) in wanted
            for v, m in zip(values.tolist(), missing.tolist(), strict=True)
        ),
        dtype=bool,
        count=len(values),
    )


def condition_mask(
    condition: Condition, features: pd.DataFrame, entity_ids: NDArray[np.object_]
) -> NDArray[np.bool_]:
    """Boolean mask of the rows where ``condition`` holds."""
    values = column_values(features, condition.feature, entity_ids)
    missing = _missing(values)
    op, target = condition.op, condition.value
    if op == "is_missing":
        return missing if target is None or target is True else ~missing
    if op in ("<", "<=", ">", ">="):
        assert isinstance(target, int | float)
        column = features.get(condition.feature) if condition.feature != ENTITY_ID else None
        if (
            column is not None
            and pd.api.types.is_numeric_dtype(column.dtype)
            and not pd.api.types.is_bool_dtype(column.dtype)
        ):
            numbers = column.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            numbers = _numeric(values, missing)
        with np.errstate(invalid="ignore"):
            if op == "<":
                return numbers < target
            if op == "<=":
                return numbers <= target
            if op == ">":
                return numbers > target
            return numbers >= target
    targets: Sequence[object] = target if isinstance(target, list) else [target]
    wanted = {k for k in (_key(t) for t in targets) if k is not None}
    hit = _member(values, missing, wanted)
    if op in ("==", "in"):
        return hit
    return ~hit & ~missing  # "!=" and "not_in"


def conditions_mask(
    conditions: Sequence[Condition], features: pd.DataFrame, entity_ids: NDArray[np.object_]
) -> NDArray[np.bool_]:
    """Rows where all ``conditions`` hold (logical AND)."""
    mask = np.ones(len(features), dtype=bool)
    for condition in conditions:
        mask &= condition_mask(condition, features, entity_ids)
    return mask
