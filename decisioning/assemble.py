"""Glue between parsed events, the policy's :class:`DecisionParts` and :class:`Decision` records."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from decisioning.audit import feature_hash
from decisioning.contracts import Arm, Decision, Event
from decisioning.decide import DecisionParts
from decisioning.policy import Policy

__all__ = ["build_decisions"]


def build_decisions(
    events: Sequence[Event],
    parts: Sequence[DecisionParts],
    *,
    policy: Policy,
    model_name: str,
    model_version: int | None,
    arms: Sequence[Arm],
    shadow: bool,
    decided_at: datetime,
    feature_names: Sequence[str] | None = None,
) -> list[Decision]:
    """One :class:`Decision` per event from the policy's parts.

    ``feature_hash`` covers ``feature_names`` (the features the model used; all of the event's
    features when None). ``latency_ms`` is ``decided_at - event_time``.
    """
    if not len(events) == len(parts) == len(arms):
        raise ValueError(f"{len(events)} events, {len(parts)} parts, {len(arms)} arms")
    names = list(feature_names) if feature_names is not None else None
    out: list[Decision] = []
    for event, part, arm in zip(events, parts, arms, strict=True):
        out.append(
            Decision(
                event_id=event.event_id,
                entity_id=event.entity_id,
                decision=part.decision,
                score=part.score,
                threshold=part.threshold,
                reasons=list(part.reasons),
                rule=part.rule,
                segment=part.segment,
                model_name=model_name,
                model_version=model_version,
                policy_name=policy.name,
                policy_version=policy.version,
                arm=arm,
                shadow=shadow,
                feature_hash=feature_hash(event.features, names),
                event_time=event.event_time,
                decided_at=decided_at,
                latency_ms=(decided_at - event.event_time).total_seconds() * 1000.0,
            )
        )
    return out
