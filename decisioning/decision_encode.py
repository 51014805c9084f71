"""Serialise a batch of decisions column-wise: one JSON :class:`Decision` record per row.

:func:`encode_decisions` writes what ``encode_record(Decision(...))`` writes for the records
``assemble.build_decisions`` builds (same fields in the same order, same values, datetimes as
``2026-11-23T12:00:00.042500Z``), without a pydantic object per row. Floats print alike except
that the stdlib/pydantic spell a positive exponent ``1e+16`` where msgspec writes ``1e16`` (the
same number). Cheap checks mirror the contract's constraints; a row that fails one is built
as a pydantic :class:`Decision` (which raises its ``ValidationError``, or encodes as usual).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

import msgspec

from decisioning.columns import DecisionColumns, EventColumns
from decisioning.contracts import SCHEMA_VERSION, Arm, Decision, Reason, encode_record

__all__ = ["encode_decisions"]

_ARMS = frozenset({"champion", "challenger"})
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class _Reason(msgspec.Struct):
    code: str
    text: str
    feature: str | None
    contribution: float | None


class _Decision(msgspec.Struct):
    """:class:`Decision`'s fields, in its order."""

    schema_version: int
    event_id: str
    entity_id: str
    decision: str
    score: float | None
    threshold: float | None
    reasons: list[_Reason]
    reason_method: str | None
    rule: str | None
    segment: str | None
    model_name: str
    model_version: int | None
    policy_name: str
    policy_version: str
    arm: str
    shadow: bool
    feature_hash: str
    event_time: datetime
    decided_at: datetime
    latency_ms: float


_ENCODER = msgspec.json.Encoder()


def _name_ok(value: object, limit: int = 128) -> bool:
    """``value`` satisfies the contract's ``Name`` (a str of 1..limit chars, no NUL)."""
    return type(value) is str and 0 < len(value) <= limit and "\x00" not in value


def _utc(value: datetime) -> datetime | None:
    """``value`` in UTC, or None when it is not timezone-aware."""
    if value.tzinfo is UTC:
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        return None
    return value.astimezone(UTC)


def encode_decisions(
    events: EventColumns,
    parts: DecisionColumns,
    *,
    model_name: str,
    model_version: int | None,
    policy_name: str,
    policy_version: str,
    arms: str | Sequence[str],
    shadow: bool,
    decided_at: datetime,
    reason_method: str | None,
) -> list[bytes]:
    """One JSON ``Decision`` record per row, as ``encode_record`` writes ``build_decisions``'.

    ``arms`` is one arm for every row or one per row. ``reason_method`` is written on the rows
    with at least one attributed reason (one with a ``contribution``), null on the others.
    ``latency_ms`` is ``decided_at - event_time`` in milliseconds.
    """
    n = len(events)
    arm_of = [arms] * n if isinstance(arms, str) else list(arms)
    if not n == len(parts) == len(arm_of):
        raise ValueError(f"{n} events, {len(parts)} parts, {len(arm_of)} arms")
    constants: dict[str, Any] = {
        "model_name": model_name,
        "model_version": model_version,
        "policy_name": policy_name,
        "policy_version": policy_version,
        "shadow": shadow,
        "decided_at": decided_at,
    }
    decided = _utc(decided_at)
    fast = (
        decided is not None
        and type(decided) is datetime
        and _name_ok(model_name)
        and _name_ok(policy_name)
        and _name_ok(policy_version)
        and (model_version is None or type(model_version) is int)
        and type(shadow) is bool
        and (reason_method is None or type(reason_method) is str)
    )
    good_decisions = {d for d in set(parts.decision) if _name_ok(d)}
    good_codes: set[str] = set()
    isfinite = math.isfinite
    event_ids, entity_ids, times, digests = (
        events.event_id, events.entity_id, events.event_time, events.feature_hash,
    )  # fmt: skip
    decisions, scores, thresholds = parts.decision, parts.score, parts.threshold
    rules, segments, reasons_col = parts.rule, parts.segment, parts.reasons
    encode = _ENCODER.encode
    out: list[bytes] = []
    for i in range(n):
        rows = reasons_col[i]
        wire: list[_Reason] = []
        method = None
        for code, text, feature, contribution in rows:
            if code not in good_codes:
                if not _name_ok(code):
                    break
                good_codes.add(code)
            if type(text) is not str:
                break
            if feature is not None and type(feature) is not str:
                break
            if contribution is not None:
                if not (type(contribution) is float and isfinite(contribution)):
                    break
                method = reason_method  # an attributed reason: say how it was computed
            wire.append(_Reason(code, text, feature, contribution))
        event_id, entity_id, digest = event_ids[i], entity_ids[i], digests[i]
        decision, score, threshold = decisions[i], scores[i], thresholds[i]
        rule, segment, arm = rules[i], segments[i], arm_of[i]
        when = times[i] if times[i].tzinfo is UTC else _utc(times[i])
        if (
            not fast
            or decided is None
            or when is None
            or type(when) is not datetime
            or len(wire) != len(rows)
            or type(event_id) is not str
            or not 0 < len(event_id) <= 128
            or type(entity_id) is not str
            or not 0 < len(entity_id) <= 256
            or "\x00" in event_id
            or "\x00" in entity_id
            or decision not in good_decisions
            or not (score is None or (type(score) is float and 0.0 <= score <= 1.0))
            or not (threshold is None or (type(threshold) is float and isfinite(threshold)))
            or not (rule is None or type(rule) is str)
            or not (segment is None or type(segment) is str)
            or arm not in _ARMS
            or type(digest) is not str
            or _SHA256_HEX.fullmatch(digest) is None
        ):  # let the contract decide (and raise where build_decisions would)
            record = _contract_record(events, parts, i, arm, reason_method, constants)
            out.append(encode_record(record))
            continue
        latency = (decided - when).total_seconds() * 1000.0
        out.append(
            encode(
                _Decision(
                    SCHEMA_VERSION, event_id, entity_id, decision, score, threshold, wire,
                    method, rule, segment, model_name, model_version, policy_name,
                    policy_version, arm, shadow, digest, when, decided, latency,
                )
            )
        )  # fmt: skip
    return out


def _contract_record(
    events: EventColumns,
    parts: DecisionColumns,
    i: int,
    arm: str,
    reason_method: str | None,
    constants: dict[str, Any],
) -> Decision:
    """Row ``i`` as the pydantic ``Decision`` (the slow path: raises what it raises)."""
    reasons = [
        Reason(code=code, text=text, feature=feature, contribution=contribution)
        for code, text, feature, contribution in parts.reasons[i]
    ]
    event_time = events.event_time[i]
    return Decision(
        event_id=events.event_id[i],
        entity_id=events.entity_id[i],
        decision=parts.decision[i],
        score=parts.score[i],
        threshold=parts.threshold[i],
        reasons=reasons,
        reason_method=reason_method if any(r.contribution is not None for r in reasons) else None,
        rule=parts.rule[i],
        segment=parts.segment[i],
        arm=cast(Arm, arm),
        feature_hash=events.feature_hash[i],
        event_time=event_time,
        latency_ms=(constants["decided_at"] - event_time).total_seconds() * 1000.0,
        **constants,
    )
