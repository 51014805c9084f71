"""decisionflow decisioning: wire contracts, declarative policies, cut-offs, arms and audit.

Pure and dependency-light (pydantic, numpy, pandas, PyYAML): no Kafka, Celery or model code.
Typical use in a worker, per micro-batch::

    event = parse_event(raw, max_bytes)                     # EventError -> dead_letter(...)
    frame = events_frame(events, columns)
    arms = assign_arms([e.entity_id for e in events], arm_config)
    parts = decide_batch(policy, frame, scores, contributions, feature_names, entity_ids)
    records = build_decisions(events, parts, policy=..., model_name=..., ...)
    payload = encode_record(record)
"""

from decisioning.arms import ArmAssignment, ArmConfig, assign_arms, entity_uniforms
from decisioning.assemble import build_decisions, events_frame
from decisioning.audit import canonical_json, diff_decisions, feature_hash
from decisioning.contracts import (
    DLQ_RAW_LIMIT,
    SCHEMA_VERSION,
    Arm,
    DeadLetter,
    Decision,
    Event,
    EventError,
    EventValidationError,
    FeatureValue,
    InvalidJsonError,
    NonFiniteError,
    NotObjectError,
    NotUtf8Error,
    Outcome,
    OversizeError,
    Reason,
    SchemaVersionError,
    Stage,
    dead_letter,
    encode_record,
    parse_event,
)
from decisioning.decide import SCORE_BAND, SCORE_INVALID, DecisionParts, decide_batch
from decisioning.policy import (
    Band,
    Condition,
    Fallback,
    Policy,
    PolicyError,
    ReasonCode,
    Rule,
    Segment,
    available_policies,
    check_features,
    dump_policy,
    load_policy,
    parse_policy,
    save_policy,
)
from decisioning.thresholds import (
    Costs,
    Cutoffs,
    apply_cutoffs,
    expected_value,
    optimal_cutoffs,
)

__all__ = [
    "DLQ_RAW_LIMIT",
    "SCHEMA_VERSION",
    "SCORE_BAND",
    "SCORE_INVALID",
    "Arm",
    "ArmAssignment",
    "ArmConfig",
    "Band",
    "Condition",
    "Costs",
    "Cutoffs",
    "DeadLetter",
    "Decision",
    "DecisionParts",
    "Event",
    "EventError",
    "EventValidationError",
    "Fallback",
    "FeatureValue",
    "InvalidJsonError",
    "NonFiniteError",
    "NotObjectError",
    "NotUtf8Error",
    "Outcome",
    "OversizeError",
    "Policy",
    "PolicyError",
    "Reason",
    "ReasonCode",
    "Rule",
    "SchemaVersionError",
    "Segment",
    "Stage",
    "apply_cutoffs",
    "assign_arms",
    "available_policies",
    "build_decisions",
    "canonical_json",
    "check_features",
    "dead_letter",
    "decide_batch",
    "diff_decisions",
    "dump_policy",
    "encode_record",
    "entity_uniforms",
    "events_frame",
    "expected_value",
    "feature_hash",
    "load_policy",
    "optimal_cutoffs",
    "parse_event",
    "parse_policy",
    "save_policy",
]
