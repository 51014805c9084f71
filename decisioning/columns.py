"""Column-wise batches: the hot path's shapes for decoded events and the policy's decisions.

The streaming engine decides whole batches; building one pydantic object per event cost more
than the model. These plain columns carry the same information as a list of
:class:`~decisioning.contracts.Event` (decoded and validated) and a list of
:class:`~decisioning.decide.DecisionParts` (what the policy decided), one list entry per row.
The pydantic models stay the contract: every record serialised from these columns validates
against them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["DecisionColumns", "EventColumns", "ReasonRow"]

ReasonRow = tuple[str, str, str | None, float | None]
"""One reason: (code, text, feature or None, contribution or None), as in ``Reason``."""


@dataclass(frozen=True, slots=True)
class EventColumns:
    """Validated events, one list entry per row (row i of every column is event i)."""

    event_id: list[str]
    entity_id: list[str]
    event_time: list[datetime]
    """Timezone-aware, normalised to UTC (as ``Event.event_time``)."""
    features: dict[str, list[Any]]
    """Spec feature name -> one value per row; None where the event did not send it."""
    feature_hash: list[str]
    """sha256 hex of each event's features as they arrived (``audit.feature_hash``)."""

    def __len__(self) -> int:
        return len(self.event_id)

    def take(self, rows: Sequence[int]) -> EventColumns:
        """The rows ``rows``, in that order."""
        return EventColumns(
            event_id=[self.event_id[i] for i in rows],
            entity_id=[self.entity_id[i] for i in rows],
            event_time=[self.event_time[i] for i in rows],
            features={k: [v[i] for i in rows] for k, v in self.features.items()},
            feature_hash=[self.feature_hash[i] for i in rows],
        )


@dataclass(frozen=True, slots=True)
class DecisionColumns:
    """The policy's part of each row's decision (as ``DecisionParts``, column-wise)."""

    decision: list[str]
    score: list[float | None]
    threshold: list[float | None]
    reasons: list[list[ReasonRow]]
    rule: list[str | None]
    segment: list[str | None]
    source: list[str]
    """``rule``, ``model`` or ``fallback``: what decided the row."""

    def __len__(self) -> int:
        return len(self.decision)

    def take(self, rows: Sequence[int]) -> DecisionColumns:
        """The rows ``rows``, in that order."""
        return DecisionColumns(
            decision=[self.decision[i] for i in rows],
            score=[self.score[i] for i in rows],
            threshold=[self.threshold[i] for i in rows],
            reasons=[self.reasons[i] for i in rows],
            rule=[self.rule[i] for i in rows],
            segment=[self.segment[i] for i in rows],
            source=[self.source[i] for i in rows],
        )
