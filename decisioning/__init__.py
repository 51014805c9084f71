"""decisionflow decisioning: the pure decision core.

Owns the wire contracts (events, decisions, outcomes, dead letters), all validation of a raw
event (:mod:`decisioning.validation`: every error names its dead-letter reason and stage),
declarative policies, decide (rules, segments, bands, reason codes), arms, assembly of decision
records, audit (canonical JSON, feature hashes, diffs) and cost-optimal cut-offs.

Pure and dependency-light (pydantic, numpy, pandas, PyYAML): it imports nothing else of
decisionflow, no model, storage, rendering, Kafka or Celery code (a unit test holds that line).
Typical use in a worker, per micro-batch::

    event = validate_event(raw, max_bytes, check_features)  # EventError -> dead_letter(...)
    frame = features_from_records(...)                     # models.data: one frame builder
    arms = assign_arms([e.entity_id for e in events], arm_config)
    parts = decide_batch(policy, frame, scores, contributions, feature_names, entity_ids)
    records = build_decisions(events, parts, policy=..., model_name=..., ...)
    payload = encode_record(record)

The columnar hot path does the same without a pydantic object per event:
``BatchDecoder(kinds, spec_name, max_bytes, ranges=..., window=...).decode(raws)`` gives the
good events as :class:`EventColumns` (and one ``EventError`` per bad record, exactly as
``validate_event``);
``encode_decisions(columns, decision_columns, ...)`` writes the ``Decision`` records.
"""

from decisioning.arms import ArmAssignment, ArmConfig, assign_arms, entity_uniforms
from decisioning.assemble import build_decisions
from decisioning.audit import canonical_json, diff_decisions, feature_hash
from decisioning.batch_decode import BatchDecoder, DecodedBatch, UnhashableFeaturesError
from decisioning.columns import DecisionColumns, EventColumns, ReasonRow
from decisioning.contracts import (
    DLQ_RAW_LIMIT,
    SCHEMA_VERSION,
    Arm,
    DeadLetter,
    Decision,
    Event,
    EventError,
    FeatureValue,
    Outcome,
    Reason,
    Stage,
    dead_letter,
    encode_record,
)
from decisioning.decide import SCORE_BAND, SCORE_INVALID, DecisionParts, decide_batch
from decisioning.decision_encode import encode_decisions
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
from decisioning.validation import (
    EventValidationError,
    FeatureChecker,
    FeatureTypeError,
    InvalidJsonError,
    NonFiniteError,
    NotObjectError,
    NotUtf8Error,
    OutOfRangeError,
    OversizeError,
    SchemaVersionError,
    TimeWindow,
    UnknownFeatureError,
    parse_event,
    validate_event,
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
    "BatchDecoder",
    "Condition",
    "Costs",
    "Cutoffs",
    "DeadLetter",
    "Decision",
    "DecisionColumns",
    "DecisionParts",
    "DecodedBatch",
    "Event",
    "EventColumns",
    "EventError",
    "EventValidationError",
    "Fallback",
    "FeatureChecker",
    "FeatureTypeError",
    "FeatureValue",
    "InvalidJsonError",
    "NonFiniteError",
    "NotObjectError",
    "NotUtf8Error",
    "OutOfRangeError",
    "Outcome",
    "OversizeError",
    "Policy",
    "PolicyError",
    "Reason",
    "ReasonCode",
    "ReasonRow",
    "Rule",
    "SchemaVersionError",
    "Segment",
    "Stage",
    "TimeWindow",
    "UnhashableFeaturesError",
    "UnknownFeatureError",
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
    "encode_decisions",
    "encode_record",
    "entity_uniforms",
    "expected_value",
    "feature_hash",
    "load_policy",
    "optimal_cutoffs",
    "parse_event",
    "parse_policy",
    "save_policy",
    "validate_event",
]
