"""Per-event feature checks against the feature spec, before a batch is encoded.

The encoder is forgiving by design (missing values get imputed, unknown categories map to
``<unk>``); what it must never do is silently turn a wrong type into a missing value. These
checks find such events so they go to the dead-letter topic with a clear reason instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from decisioning.contracts import EventError
from models.spec import FeatureSpec

__all__ = ["FeatureChecker", "FeatureTypeError", "UnknownFeatureError"]


class FeatureTypeError(EventError):
    """A feature value does not have the type its spec column declares."""

    reason = "feature_type"


class UnknownFeatureError(EventError):
    """An event names a feature the spec does not know."""

    reason = "unknown_feature"


def _type_ok(kind: str, value: Any) -> bool:
    if value is None:
        return True
    if kind == "numeric":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool | str)
    return isinstance(value, str | int) and not isinstance(value, bool)  # categorical


class FeatureChecker:
    """Checks events' features against one spec (its column types looked up once)."""

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec_name = spec.name
        self.kinds = {c.name: c.type for c in spec.columns}

    def __call__(self, features: Mapping[str, Any]) -> None:
        """Raise if ``features`` has an unknown name or a value of the wrong type."""
        kinds = self.kinds
        if not kinds.keys() >= features.keys():
            unknown = sorted(set(features) - kinds.keys())
            raise UnknownFeatureError(f"features not in spec {self.spec_name!r}: {unknown}")
        for name, value in features.items():
            if not _type_ok(kinds[name], value):
                raise FeatureTypeError(
                    f"feature {name!r} must be {kinds[name]}, "
                    f"got {type(value).__name__} {value!r:.40}"
                )
