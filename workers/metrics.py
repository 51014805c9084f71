"""Prometheus metrics of a decision worker (served on ``metrics_port`` when set) and of the
sink (``decisionflow sink --metrics-port``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, Info, start_http_server
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

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
    "BatchHistogram",
    "serve",
]


class _BatchChild:
    """One label set of a :class:`BatchHistogram`."""

    def __init__(self, bounds: npt.NDArray[np.float64], lock: threading.Lock) -> None:
        self._bounds = bounds
        self._lock = lock
        self.counts = np.zeros(len(bounds) + 1, dtype=np.int64)  # per bucket, +Inf last
        self.sum = 0.0

    def observe_many(self, values: Sequence[float] | npt.NDArray[np.float64]) -> None:
        """Observe every value of ``values`` at once."""
        arr = np.asarray(values, dtype=np.float64)
        if not arr.size:
            return
        # bucket ``le=b`` holds v <= b: the first bound >= v
        counts = np.bincount(np.searchsorted(self._bounds, arr), minlength=len(self.counts))
        with self._lock:
            self.counts += counts
            self.sum += float(arr.sum())


class BatchHistogram(Collector):
    """A labelled histogram fed whole batches: one vectorised call per batch instead of one
    locked Python call per value (``Histogram.observe`` costs ~2 µs, per event on the hot path).

    Exposed like a ``prometheus_client.Histogram`` of the same name and buckets
    (``_bucket{le=...}``, ``_count``, ``_sum``); ``_created`` is left out.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = list(labelnames)
        self._bounds = np.array(sorted(buckets), dtype=np.float64)
        self._lock = threading.Lock()
        self._children: dict[tuple[str, ...], _BatchChild] = {}
        if registry is not None:
            registry.register(self)

    def labels(self, *values: str) -> _BatchChild:
        """The child of one label set (created on first use)."""
        if len(values) != len(self.labelnames):
            raise ValueError(f"expected labels {self.labelnames}, got {values}")
        key = tuple(str(v) for v in values)
        with self._lock:
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = _BatchChild(self._bounds, self._lock)
        return child

    def describe(self) -> Iterator[HistogramMetricFamily]:
        """The metric's name and type, for the registry."""
        yield HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterator[HistogramMetricFamily]:
        """Cumulative buckets, count and sum of every label set."""
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        les = [repr(float(b)) for b in self._bounds] + ["+Inf"]  # as Histogram prints them
        with self._lock:
            snapshot = [(k, c.counts.cumsum().tolist(), c.sum) for k, c in self._children.items()]
        for key, cumulative, total in snapshot:
            family.add_metric(list(key), list(zip(les, cumulative, strict=True)), total)
        yield family


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
E2E_LATENCY = BatchHistogram(
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
GROUP_UNOWNED = Gauge(
    "decisionflow_group_unowned_partitions",
    "Partitions of the events topic no member of the worker's group owns, at the last group "
    "check (cooperative groups; see workers/group_watch.py).",
    ["flow"],
)
GROUP_REBALANCES_FORCED = Counter(
    "decisionflow_group_rebalances_forced",
    "Rebalances a worker forced because partitions stayed unowned in a settled group.",
    ["flow"],
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
