"""The decision engine: raw Kafka records in, decision / shadow / dead-letter records out.

Pure with respect to Kafka: it takes plain records and returns what to write, so the same code
serves the streaming worker, ``score_file`` backfills and ``replay``. Nothing here raises for a
bad event: each one becomes a dead-letter record with its reason, stage and source position.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from decisioning.arms import ArmConfig, assign_arms
from decisioning.batch_decode import BatchDecoder
from decisioning.columns import DecisionColumns, EventColumns
from decisioning.contracts import (
    Arm,
    DeadLetter,
    Decision,
    Stage,
    UndecodableRecordError,
    dead_letter,
    encode_record,
)
from decisioning.decide import decide_columns
from decisioning.decision_encode import encode_decisions
from decisioning.policy import Policy
from decisioning.validation import TimeWindow
from models.spec import FeatureSpec
from workers.idempotency import DuplicateEvent, Idempotency, owner_of
from workers.kafka_client import RawRecord
from workers.settings import Topics

__all__ = ["BatchResult", "DecisionEngine", "Emitted", "RawRecord", "ScoringModel"]

log = logging.getLogger(__name__)
Explain = Callable[[npt.NDArray[np.intp]], npt.NDArray[np.float64]]


class Scored(Protocol):
    """A scored batch that explains chosen rows on demand (``models.model.ScoredColumns``)."""

    scores: npt.NDArray[np.float64]
    method_used: str | None

    def explain(self, rows: npt.NDArray[np.intp]) -> npt.NDArray[np.float64]:
        """Contributions of ``rows`` (len(rows), n_features)."""
        ...


class ScoringModel(Protocol):
    """What the engine needs of a deployed model (a registry-loaded model satisfies it)."""

    name: str
    version: int
    spec: FeatureSpec

    def score_with_explainer(
        self, features: Mapping[str, Sequence[Any]], n_rows: int, method: str | None = None
    ) -> Scored:
        """Risk scores of a column-wise batch, with ``explain(rows)`` from the same encoding."""
        ...


@dataclass(slots=True)
class Emitted:
    """Serialised decisions for one topic, with what the metrics need."""

    keys: list[bytes] = field(default_factory=list)
    values: list[bytes] = field(default_factory=list)
    labels: list[tuple[str, str]] = field(default_factory=list)
    """(decision, arm) per record."""
    latency_ms: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.values)

    def extend(self, other: Emitted) -> None:
        self.keys += other.keys
        self.values += other.values
        self.labels += other.labels
        self.latency_ms += other.latency_ms


@dataclass(slots=True)
class BatchResult:
    """What one batch produces; every input record is in exactly one of live / dlq /
    duplicates."""

    live: Emitted = field(default_factory=Emitted)
    shadow_out: Emitted = field(default_factory=Emitted)
    dlq: list[DeadLetter] = field(default_factory=list)
    duplicates: list[DuplicateEvent] = field(default_factory=list)
    score_seconds: float = 0.0

    @property
    def decisions(self) -> list[Decision]:
        """The live decisions as contract objects (parsed back: for tools and tests)."""
        return [Decision.model_validate_json(v) for v in self.live.values]

    @property
    def shadow(self) -> list[Decision]:
        """The shadow decisions as contract objects (parsed back: for tools and tests)."""
        return [Decision.model_validate_json(v) for v in self.shadow_out.values]

    def records(self, topics: Topics) -> Iterator[tuple[str, bytes | None, bytes]]:
        """``(topic, key, value)`` of every record to write: decisions, shadow, dead letters
        and (when the topic is set) duplicates."""
        for topic, out in ((topics.decisions, self.live), (topics.shadow, self.shadow_out)):
            yield from zip([topic] * len(out), out.keys, out.values, strict=True)
        for dl in self.dlq:
            key = dl.source_key.encode() if dl.source_key is not None else None
            yield topics.dlq, key, encode_record(dl)
        if topics.duplicates:
            for dup in self.duplicates:
                yield topics.duplicates, dup.entity_id.encode(), dup.encode()

    def decision_counts(self) -> Counter[tuple[str, str, str]]:
        """Decisions per (decision, arm, shadow) label set."""
        counts: Counter[tuple[str, str, str]] = Counter(
            (d, a, "false") for d, a in self.live.labels
        )
        counts.update((d, a, "true") for d, a in self.shadow_out.labels)
        return counts

    def latencies_ms(self) -> list[float]:
        """Event time to decision, per live decision."""
        return self.live.latency_ms


@dataclass(frozen=True)
class _Variant:
    model: ScoringModel | None
    policy: Policy


class DecisionEngine:
    """Decides batches with the champion (and, in shadow, the challenger) model and policy.

    Column-wise: one strict decode of the whole batch, the model's inputs built from the
    decoded columns, a vectorised policy, reason codes only where the policy wants them, and
    records serialised column by column. The pydantic models stay the contract.
    """

    def __init__(
        self,
        champion: ScoringModel | None,
        policy: Policy,
        spec: FeatureSpec,
        *,
        max_message_bytes: int = 64 * 1024,
        score_timeout_s: float = 10.0,
        arms: ArmConfig | None = None,
        challenger: ScoringModel | None = None,
        challenger_policy: Policy | None = None,
        model_name: str = "credit_data",
        idempotency: Idempotency | None = None,
        threads: int = 0,
    ) -> None:
        self.spec = spec
        self.threads = threads
        self.idempotency = idempotency
        self._decoder = BatchDecoder(
            {c.name: c.type for c in spec.columns},
            spec.name,
            max_message_bytes,
            ranges=spec.ranges,
            window=TimeWindow(spec.event_time.max_age, spec.event_time.max_future),
        )
        self.max_message_bytes = max_message_bytes
        self.score_timeout_s = score_timeout_s
        self.arms = arms or ArmConfig()
        self.model_name = model_name
        self.champion = _Variant(champion, policy)
        self.challenger: _Variant | None = None
        if challenger is not None or challenger_policy is not None:
            self.challenger = _Variant(challenger or champion, challenger_policy or policy)
        self._pool = self._scoring_pool()
        self._claims_pool = (
            cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="claims")
            if idempotency is not None
            else None
        )

    # ------------------------------------------------------------------ public

    def swap_champion(self, model: ScoringModel) -> None:
        """Use ``model`` from the next batch on (called between batches)."""
        self.champion = _Variant(model, self.champion.policy)

    @property
    def model_version(self) -> int | None:
        """Version of the champion model deciding now (None: no model)."""
        return self.champion.model.version if self.champion.model else None

    def process(self, records: Sequence[RawRecord]) -> BatchResult:
        """Decide a batch. Never raises for bad input: bad events become dead letters.

        Raises :class:`~workers.idempotency.IdempotencyUnavailable` when event ids cannot be
        checked: nothing of the batch may be written then.
        """
        result = BatchResult()
        if any(rec.error is not None for rec in records):
            records = _dead_letter_undecodable(records, result)
        decoded = self._decoder.decode([rec.value or b"" for rec in records])
        for i, exc in decoded.errors:  # each error names its reason and stage
            result.dlq.append(dead_letter_of(records[i], exc))
        events, rows = decoded.columns, list(decoded.ok)
        if not len(events):
            return result
        # the claims' round trip to the store overlaps the deciding: every row is decided, and
        # in the rare batch that holds duplicates the first-claimed rows are decided again
        claims = (
            self._claims_pool.submit(self._claim, records, events, rows)
            if self._claims_pool
            else None
        )
        decided = self._decide_rows(records, events, rows)
        if claims is not None:
            keep = self._drop_duplicates(claims.result(), events, result)
            if len(keep) < len(rows):
                events, rows = events.take(keep), [rows[r] for r in keep]
                decided = self._decide_rows(records, events, rows) if rows else BatchResult()
        result.live, result.shadow_out = decided.live, decided.shadow_out
        result.dlq += decided.dlq
        result.score_seconds += decided.score_seconds
        return result

    def warm_up(self, rows: int = 64) -> None:
        """Decide a synthetic batch once and drop it: the first batch of a cold process (lazy
        imports, torch kernels, allocator) is several times slower than the next ones."""
        now = datetime.now(UTC)
        events = EventColumns(
            event_id=[f"warm-up-{i}" for i in range(rows)],
            entity_id=[f"warm-up-{i}" for i in range(rows)],
            event_time=[now] * rows,
            features={name: [None] * rows for name in self.spec.feature_names},
            feature_hash=["0" * 64] * rows,
        )
        self._decide(events, BatchResult())

    def close(self) -> None:
        """Release the scoring and claims threads and the claim store's connections."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._claims_pool is not None:
            self._claims_pool.shutdown(wait=True, cancel_futures=True)
        if self.idempotency is not None:
            self.idempotency.close()

    # ------------------------------------------------------------------ steps

    def _scoring_pool(self) -> cf.ThreadPoolExecutor:
        """The one thread models score and explain on, its native thread pools limited to
        ``threads`` (0: the libraries' defaults). The limit covers the runtimes loaded when
        the thread starts: a worker has imported torch and scikit-learn by then."""
        return cf.ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="score",
            initializer=partial(_limit_native_threads, self.threads) if self.threads else None,
        )

    def _claim(
        self, records: Sequence[RawRecord], events: EventColumns, rows: list[int]
    ) -> tuple[list[str], list[str | None]]:
        """Claim every event id (on the claims thread): the owners and who held each first."""
        assert self.idempotency is not None
        owners = [owner_of(records[i].topic, records[i].partition, records[i].offset) for i in rows]
        return owners, self.idempotency.claim(events.event_id, owners)

    def _drop_duplicates(
        self,
        claimed: tuple[list[str], list[str | None]],
        events: EventColumns,
        result: BatchResult,
    ) -> list[int]:
        """The rows whose event id this batch claimed first; the others become duplicates."""
        owners, held = claimed
        now = time.time()
        keep: list[int] = []
        for r, first in enumerate(held):
            if first is None:
                keep.append(r)
            else:
                result.duplicates.append(
                    DuplicateEvent(events.event_id[r], events.entity_id[r], first, owners[r], now)
                )
        return keep

    def _decide_rows(
        self, records: Sequence[RawRecord], events: EventColumns, rows: list[int]
    ) -> BatchResult:
        """Decide ``events`` (``rows``: their records); a batch that fails is decided one by
        one, and the events that still fail become dead letters."""
        result = BatchResult()
        try:
            self._decide(events, result)
        except Exception:  # a bug or a model crash: isolate the culprit records
            log.exception("batch of %d failed; deciding one by one", len(events))
            result = BatchResult()
            for row, i in enumerate(rows):
                try:
                    self._decide(events.take([row]), result)
                except Exception as exc:
                    result.dlq.append(dead_letter_of(records[i], exc, "decide"))
        return result

    def _decide(self, events: EventColumns, result: BatchResult) -> None:
        """Decide ``events``; ``result`` is only extended once everything succeeded."""
        if self.challenger is None:
            live, _, _ = self._run_variant(self.champion, "champion", events, result)
            result.live.extend(live)
            return
        arms = assign_arms(events.entity_id, self.arms)
        plans: list[tuple[_Variant, Arm, Any, Any]] = [
            (self.champion, "champion", ~arms.challenger, arms.challenger),
            (self.challenger, "challenger", arms.challenger, ~arms.challenger),
        ]
        live, shadow = Emitted(), Emitted()
        for variant, arm, deciding, other in plans:
            needed = deciding | (arms.shadow & other)
            rows = np.flatnonzero(needed)
            if not rows.size:
                continue
            sub = events.take(rows.tolist())
            decided, parts, scored = self._run_variant(variant, arm, sub, result, deciding[rows])
            live.extend(decided)
            shadow_rows = np.flatnonzero(~deciding[rows]).tolist()
            if shadow_rows:
                shadow_parts = parts.take(shadow_rows)
                shadow.extend(
                    self._emit(variant, arm, sub.take(shadow_rows), shadow_parts, True, scored)
                )
        result.live.extend(live)
        result.shadow_out.extend(shadow)

    def _run_variant(
        self,
        variant: _Variant,
        arm: Arm,
        events: EventColumns,
        result: BatchResult,
        live_mask: npt.NDArray[np.bool_] | None = None,
    ) -> tuple[Emitted, DecisionColumns, Scored | None]:
        """Score, decide and serialise ``events`` under ``variant``; the rows of
        ``live_mask`` (all when None) are emitted as live decisions."""
        scored, parts = self._score_and_decide(variant, events, result)
        if live_mask is not None and not live_mask.all():
            rows = np.flatnonzero(live_mask).tolist()
            events, live_parts = events.take(rows), parts.take(rows)
        else:
            live_parts = parts
        emitted = self._emit(variant, arm, events, live_parts, False, scored)
        return emitted, parts, scored

    def _emit(
        self,
        variant: _Variant,
        arm: Arm,
        events: EventColumns,
        parts: DecisionColumns,
        shadow: bool,
        scored: Scored | None,
    ) -> Emitted:
        model = variant.model
        decided_at = datetime.now(UTC)
        values = encode_decisions(
            events,
            parts,
            model_name=model.name if model else self.model_name,
            model_version=model.version if model and scored is not None else None,
            policy_name=variant.policy.name,
            policy_version=variant.policy.version,
            arms=arm,
            shadow=shadow,
            decided_at=decided_at,
            reason_method=scored.method_used if scored is not None else None,
        )
        return Emitted(
            keys=[e.encode() for e in events.entity_id],
            values=values,
            labels=[(d, arm) for d in parts.decision],
            latency_ms=[(decided_at - t).total_seconds() * 1000.0 for t in events.event_time],
        )

    def _score_and_decide(
        self, variant: _Variant, events: EventColumns, result: BatchResult
    ) -> tuple[Scored | None, DecisionColumns]:
        """Score ``events`` and take the policy's decisions, explaining the rows it wants
        explained: on the scoring thread, in one hand-off, bounded by the scoring timeout.

        A model that fails, stalls or returns non-finite scores gets the policy's
        model-unavailable decisions; one that fails or stalls while explaining keeps its
        scores, and the rows it was explaining get their band's reason instead.
        """
        policy, names = variant.policy, self.spec.feature_names

        def decide(scored: Scored | None, explain: Explain | None) -> DecisionColumns:
            scores = None if scored is None else scored.scores
            return decide_columns(policy, events.features, events.entity_id, scores, explain, names)

        model = variant.model
        if model is None:
            return None, decide(None, None)
        t0 = time.perf_counter()
        scoring: list[tuple[Scored | None, float]] = []  # the thread's scores, once it has them

        def run() -> tuple[Scored | None, DecisionColumns]:
            scored = self._scores(model, policy.reasons, events)
            scoring.append((scored, time.perf_counter() - t0))
            return scored, decide(scored, None if scored is None else self._explainer(scored))

        future = self._pool.submit(run)
        try:
            out = future.result(timeout=self.score_timeout_s)
        except cf.TimeoutError:
            log.error("the model timed out after %.1fs; using the fallback", self.score_timeout_s)
            # the stuck thread keeps its slot: give later batches a fresh one
            self._pool = self._scoring_pool()
            scored = scoring[0][0] if scoring else None
            out = scored, decide(scored, None if scored is None else self._no_attribution)
        result.score_seconds += scoring[0][1] if scoring else time.perf_counter() - t0
        return out

    def _scores(
        self, model: ScoringModel, method: str | None, events: EventColumns
    ) -> Scored | None:
        """The scored batch, or None (logged) when the model fails or its scores are not
        finite: the policy then takes its model-unavailable decision."""
        try:
            scored = model.score_with_explainer(events.features, len(events), method)
        except Exception:
            log.exception("scoring failed; using the fallback")
            return None
        if not np.all(np.isfinite(scored.scores)):
            log.error("model returned non-finite scores; using the fallback")
            return None
        return scored

    def _explainer(self, scored: Scored) -> Explain:
        def explain(rows: npt.NDArray[np.intp]) -> npt.NDArray[np.float64]:
            try:
                return scored.explain(rows)
            except Exception:  # no attribution: these rows get the band's reason instead
                log.exception("explaining failed; the band's reasons instead")
                return self._no_attribution(rows)

        return explain

    def _no_attribution(self, rows: npt.NDArray[np.intp]) -> npt.NDArray[np.float64]:
        return np.zeros((len(rows), len(self.spec.feature_names)))


def _limit_native_threads(threads: int) -> None:
    """Limit the calling thread's OpenMP and BLAS pools (scikit-learn's trees, numpy) to
    ``threads``. OpenMP keeps this limit per thread, so a scoring thread sets its own: left at
    one thread per core, scikit-learn's spinning OpenMP threads made a gradient-boosting
    batch of 40 rows 3x slower on a host whose other core was busy."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)


def _dead_letter_undecodable(records: Sequence[RawRecord], result: BatchResult) -> list[RawRecord]:
    """Dead-letter the records the Kafka client could not decode; the others, in order."""
    kept: list[RawRecord] = []
    for rec in records:
        if rec.error is None:
            kept.append(rec)
        else:
            result.dlq.append(dead_letter_of(rec, UndecodableRecordError(rec.error)))
    return kept


def dead_letter_of(rec: RawRecord, exc: BaseException, stage: Stage | None = None) -> DeadLetter:
    """The dead-letter record of a Kafka record: raw bytes and source position kept."""
    return dead_letter(
        exc,
        rec.value or b"",
        stage=stage,
        source_topic=rec.topic,
        source_partition=rec.partition,
        source_offset=rec.offset,
        source_key=rec.key.decode("utf-8", "replace") if rec.key is not None else None,
        failed_at=datetime.now(UTC),
    )
