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

__all__ = ["FeatureTypeError", "UnknownFeatureError", "check_features"]


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


def check_features(features: Mapping[str, Any], spec: FeatureSpec) -> None:
    """Raise if ``features`` has an unknown name or a value of the wrong type."""
    kinds = {c.name: c.type for c in spec.columns}
    unknown = sorted(set(features) - kinds.keys())
    if unknown:
        raise UnknownFeatureError(f"features not in spec {spec.name!r}: {unknown}")
    for name, value in features.items():
        if not _type_ok(kinds[name], value):
            raise FeatureTypeError(
                f"feature {name!r} must be {kinds[name]}, got {type(value).__name__} {value!r:.40}"
            )
