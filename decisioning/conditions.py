"""Vectorised evaluation of policy conditions over a batch of feature rows.

Semantics (documented in docs/policies.md):

* a value is missing when the feature is absent, ``null`` or NaN;
* every comparison with a missing value is false, for ``!=`` and ``not_in`` too: use
  ``is_missing`` to route missing values;
* comparisons are type-aware: numbers match numbers (``1 == 1.0``), strings match strings,
  booleans match booleans (``true`` never equals ``1``); ``<``, ``<=``, ``>``, ``>=`` are false
  for non-numeric values.

A batch is a DataFrame (one column per feature) or a mapping of feature name -> one value per
row (the column-wise events of the hot path); both give the same masks.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from itertools import repeat
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from decisioning.policy import ENTITY_ID, Condition

__all__ = [
    "ConditionInputs",
    "Features",
    "column_values",
    "condition_mask",
    "conditions_mask",
    "inputs_mask",
]

_Key = tuple[str, object]
Features = pd.DataFrame | Mapping[str, Sequence[Any]]
"""A batch's features: a frame, or feature name -> one value per row (absent: missing)."""

_NUMBER_TYPES = frozenset({int, float, type(None)})
# value types that are never NaN: None is their only missing value
_NO_NAN_TYPES = frozenset({str, int, bool, type(None)})
# value types that never equal a string: a plain set lookup decides string membership
_PLAIN_TYPES = frozenset({str, int, float, bool, type(None)})


def column_values(
    features: Features, name: str, entity_ids: NDArray[np.object_]
) -> NDArray[np.object_]:
    """The values of ``name`` for every row as an object array (``entity_id`` is reserved)."""
    if name == ENTITY_ID:
        return entity_ids
    if isinstance(features, pd.DataFrame):
        if name in features.columns:
            return features[name].to_numpy(dtype=object)
        return np.full(len(features), None, dtype=object)
    values = features.get(name)
    if values is None:
        return np.full(len(entity_ids), None, dtype=object)
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _numeric(values: Sequence[Any], missing: NDArray[np.bool_]) -> NDArray[np.float64]:
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


class ConditionInputs:
    """One batch's condition inputs; each column's values, missing mask and numbers are
    computed once however many conditions read it."""

    def __init__(self, features: Features, entity_ids: NDArray[np.object_]) -> None:
        self.features = features
        self.entity_ids = entity_ids
        self.n_rows = len(features) if isinstance(features, pd.DataFrame) else len(entity_ids)
        if not isinstance(features, pd.DataFrame):
            for name, values in features.items():
                if len(values) != self.n_rows:
                    raise ValueError(
                        f"feature {name!r} has {len(values)} values for {self.n_rows} rows"
                    )
        self._values: dict[str, list[Any]] = {}
        self._missing: dict[str, NDArray[np.bool_]] = {}
        self._types: dict[str, frozenset[type]] = {}
        self._numbers: dict[str, NDArray[np.float64]] = {}

    def values(self, name: str) -> list[Any]:
        """The column as a list of Python values (``entity_id``: the entity ids)."""
        if name not in self._values:
            values: Any = None
            if name != ENTITY_ID and not isinstance(self.features, pd.DataFrame):
                values = self.features.get(name)
            if values is None:
                values = column_values(self.features, name, self.entity_ids)
            if isinstance(values, np.ndarray):
                values = values.tolist()
            self._values[name] = values if type(values) is list else list(values)
        return self._values[name]

    def missing(self, name: str) -> NDArray[np.bool_]:
        """Rows where the column is absent, None or NaN."""
        if name not in self._missing:
            values = self.values(name)
            if self.types(name) <= _NO_NAN_TYPES:  # only None can be missing
                missing = np.fromiter(
                    map(operator.is_, values, repeat(None)), dtype=bool, count=len(values)
                )
            else:
                objects = np.empty(len(values), dtype=object)
                objects[:] = values
                missing = np.asarray(pd.isna(objects), dtype=bool)
            self._missing[name] = missing
        return self._missing[name]

    def types(self, name: str) -> frozenset[type]:
        """The Python types in the column."""
        if name not in self._types:
            self._types[name] = frozenset(map(type, self.values(name)))
        return self._types[name]

    def numbers(self, name: str) -> NDArray[np.float64]:
        """float64 of the numeric values (NaN: missing or not a number; bools are not numbers)."""
        if name not in self._numbers:
            self._numbers[name] = self._compute_numbers(name)
        return self._numbers[name]

    def _compute_numbers(self, name: str) -> NDArray[np.float64]:
        frame = self.features if isinstance(self.features, pd.DataFrame) else None
        column = frame.get(name) if frame is not None and name != ENTITY_ID else None
        if (
            column is not None
            and pd.api.types.is_numeric_dtype(column.dtype)
            and not pd.api.types.is_bool_dtype(column.dtype)
        ):
            return np.asarray(column.to_numpy(dtype=np.float64, na_value=np.nan))
        if self.types(name) <= _NUMBER_TYPES:  # ints, floats, None: numpy converts (None: NaN)
            try:
                return np.array(self.values(name), dtype=np.float64)
            except OverflowError:
                pass
        return _numeric(self.values(name), self.missing(name))

    def member(self, name: str, wanted: set[_Key]) -> NDArray[np.bool_]:
        """Rows whose value is one of ``wanted`` (type-aware keys); missing rows never are."""
        values = self.values(name)
        strings = {k[1] for k in wanted if k[0] == "str"}
        if len(strings) == len(wanted) and self.types(name) <= _PLAIN_TYPES:
            return np.fromiter(map(strings.__contains__, values), dtype=bool, count=len(values))
        missing = self.missing(name)
        return np.fromiter(  # plain strings (the common case) skip the key tuple
            (
                v in strings if type(v) is str else not m and _key(v) in wanted
                for v, m in zip(values, missing.tolist(), strict=True)
            ),
            dtype=bool,
            count=len(values),
        )


def _mask(condition: Condition, inputs: ConditionInputs) -> NDArray[np.bool_]:
    name, op, target = condition.feature, condition.op, condition.value
    if op == "is_missing":
        missing = inputs.missing(name)
        return missing if target is None or target is True else ~missing
    if op in ("<", "<=", ">", ">="):
        assert isinstance(target, int | float)
        numbers = inputs.numbers(name)
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
    hit = inputs.member(name, wanted)
    if op in ("==", "in"):
        return hit
    return ~hit & ~inputs.missing(name)  # "!=" and "not_in"


def inputs_mask(conditions: Sequence[Condition], inputs: ConditionInputs) -> NDArray[np.bool_]:
    """Rows of ``inputs`` where all ``conditions`` hold (logical AND)."""
    mask = np.ones(inputs.n_rows, dtype=bool)
    for condition in conditions:
        mask &= _mask(condition, inputs)
    return mask


def condition_mask(
    condition: Condition, features: Features, entity_ids: NDArray[np.object_]
) -> NDArray[np.bool_]:
    """Boolean mask of the rows where ``condition`` holds."""
    return _mask(condition, ConditionInputs(features, entity_ids))


def conditions_mask(
    conditions: Sequence[Condition], features: Features, entity_ids: NDArray[np.object_]
) -> NDArray[np.bool_]:
    """Rows where all ``conditions`` hold (logical AND)."""
    return inputs_mask(conditions, ConditionInputs(features, entity_ids))
