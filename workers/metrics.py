"""Prometheus metrics of a decision worker (served on ``metrics_port`` when set) and of the
sink (``decisionflow sink --metrics-port``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info, start_http_server

__all__ = [
    "BATCH_SIZE",
    "DECISIONS",
    "DLQ",
    "DUPLICATES",
    "E2E_LATENCY",
    "EVENTS_CONSUMED",
    "IDEMPOTENCY_UNAVAILABLE",
    "LAG",
    "MODEL_INFO",
    "SCORE_SECONDS",
    "SINK_DB_ERRORS",
    "SINK_QUARANTINED",
    "STAGE_SECONDS",
    "TRANSACTIONS",
    "serve",
]

# The decision-path metrics carry the decision flow (decisioning/flow.py) as label `flow`.
EVENTS_CONSUMED = Counter(
    "decisionflow_events_consumed", "Events read from Kafka by the decision worker.", ["flow"]
)
BATCH_SIZE = Histogram(
    "decisionflow_batch_size",
    "Events per micro-batch.",
    ["flow"],
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000),
)
SCORE_SECONDS = Histogram(
    "decisionflow_score_seconds",
    "Wall time of model scoring (incl. reason codes) per batch.",
    ["flow"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
STAGE_SECONDS = Histogram(
    "decisionflow_batch_stage_seconds",
    "Wall time per micro-batch stage: fill (first record buffered -> batch closed, time "
    "spent waiting for more records), decide "
    "(engine), produce (records into the open transaction), and per transaction: flush (until "
    "every record is acknowledged), offsets (send_offsets_to_transaction), commit.",
    ["flow", "stage"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
E2E_LATENCY = Histogram(
    "decisionflow_e2e_latency_seconds",
    "Event time to decision time.",
    ["flow"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DECISIONS = Counter(
    "decisionflow_decisions", "Decisions emitted.", ["flow", "decision", "arm", "shadow"]
)
DLQ = Counter("decisionflow_dlq", "Events dead-lettered.", ["flow", "reason", "stage"])
DUPLICATES = Counter(
    "decisionflow_duplicate_events",
    "Events whose event_id was already decided: no decision.",
    ["flow"],
)
IDEMPOTENCY_UNAVAILABLE = Counter(
    "decisionflow_idempotency_unavailable",
    "Batches put back because the event-id claim store (Redis) could not be reached.",
    ["flow"],
)
LAG = Gauge(
    "decisionflow_consumer_lag_records",
    "Records between the worker's position and the log end, per partition.",
    ["flow", "partition"],
)
TRANSACTIONS = Counter("decisionflow_transactions", "Kafka transactions.", ["flow", "result"])
MODEL_INFO = Info("decisionflow_model", "The model and policy deciding now.", ["flow"])
SINK_QUARANTINED = Counter(
    "decisionflow_sink_quarantined",
    "Records the sink could not land, kept in the store's quarantine table: stage parse (not "
    "a valid record) or store (the database refused its content); error_class names why.",
    ["kind", "stage", "error_class"],
)
SINK_DB_ERRORS = Counter(
    "decisionflow_sink_db_errors",
    "Sink batches (or schema checks) that failed because the database was unavailable; "
    "retried with back-off, offsets unmoved.",
)


def serve(port: int, host: str = "127.0.0.1") -> None:
    """Expose /metrics on host:port (no-op when port is 0); containers bind 0.0.0.0."""
    if port:
        start_http_server(port, addr=host)
