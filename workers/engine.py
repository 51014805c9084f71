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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

from decisioning.arms import ArmConfig, assign_arms
from decisioning.assemble import build_decisions
from decisioning.contracts import (
    DeadLetter,
    Decision,
    Event,
    EventError,
    Stage,
    dead_letter,
    encode_record,
)
from decisioning.decide import decide_batch
from decisioning.policy import Policy
from decisioning.validation import FeatureChecker, validate_event
from models.data import features_from_records
from models.spec import FeatureSpec
from workers.kafka_client import RawRecord
from workers.settings import Topics

__all__ = ["BatchResult", "DecisionEngine", "RawRecord", "ScoringModel"]

log = logging.getLogger(__name__)


class ScoringModel(Protocol):
    """What the engine needs of a deployed model (a registry-loaded model satisfies it)."""

    name: str
    version: int
    spec: FeatureSpec

    def score_explain(
        self, df: pd.DataFrame
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Risk scores (n,) and per-feature contributions (n, n_features), one encoding."""
        ...


@dataclass(slots=True)
class BatchResult:
    """What one batch produces; every input record is in exactly one of decisions / dlq."""

    decisions: list[Decision] = field(default_factory=list)
    shadow: list[Decision] = field(default_factory=list)
    dlq: list[DeadLetter] = field(default_factory=list)
    score_seconds: float = 0.0

    def records(self, topics: Topics) -> Iterator[tuple[str, bytes | None, bytes]]:
        """``(topic, key, value)`` of every record to write: decisions, shadow, dead letters."""
        for d in self.decisions:
            yield topics.decisions, d.entity_id.encode(), encode_record(d)
        for d in self.shadow:
            yield topics.shadow, d.entity_id.encode(), encode_record(d)
        for dl in self.dlq:
            key = dl.source_key.encode() if dl.source_key is not None else None
            yield topics.dlq, key, encode_record(dl)

    def decision_counts(self) -> Counter[tuple[str, str, str]]:
        """Decisions per (decision, arm, shadow) label set."""
        counts: Counter[tuple[str, str, str]] = Counter(
            (d.decision, d.arm, "false") for d in self.decisions
        )
        counts.update((d.decision, d.arm, "true") for d in self.shadow)
        return counts

    def latencies_ms(self) -> list[float]:
        """Event time to decision, per live decision."""
        return [d.latency_ms for d in self.decisions]


@dataclass(frozen=True)
class _Variant:
    model: ScoringModel | None
    policy: Policy


class DecisionEngine:
    """Decides batches with the champion (and, in shadow, the challenger) model and policy."""

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
    ) -> None:
        self.spec = spec
        self._check_features = FeatureChecker({c.name: c.type for c in spec.columns}, spec.name)
        self.max_message_bytes = max_message_bytes
        self.score_timeout_s = score_timeout_s
        self.arms = arms or ArmConfig()
        self.model_name = model_name
        self.champion = _Variant(champion, policy)
        self.challenger: _Variant | None = None
        if challenger is not None or challenger_policy is not None:
            self.challenger = _Variant(challenger or champion, challenger_policy or policy)
        self._pool = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="score")

    # ------------------------------------------------------------------ public

    def swap_champion(self, model: ScoringModel) -> None:
        """Use ``model`` from the next batch on (called between batches)."""
        self.champion = _Variant(model, self.champion.policy)

    @property
    def model_version(self) -> int | None:
        """Version of the champion model deciding now (None: no model)."""
        return self.champion.model.version if self.champion.model else None

    def process(self, records: Sequence[RawRecord]) -> BatchResult:
        """Decide a batch. Never raises for bad input: bad events become dead letters."""
        result = BatchResult()
        events: list[Event] = []
        sources: list[RawRecord] = []
        for rec in records:
            event = self._parse(rec, result)
            if event is not None:
                events.append(event)
                sources.append(rec)
        if not events:
            return result
        try:
            self._decide(events, result)
        except Exception:  # a bug or a model crash: isolate the culprit records
            log.exception("batch of %d failed; deciding one by one", len(events))
            self._decide_one_by_one(events, sources, result)
        return result

    def close(self) -> None:
        """Release the scoring thread."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ steps

    def _parse(self, rec: RawRecord, result: BatchResult) -> Event | None:
        try:
            return validate_event(rec.value or b"", self.max_message_bytes, self._check_features)
        except EventError as exc:  # the error names its reason and stage
            result.dlq.append(dead_letter_of(rec, exc))
            return None

    def _decide(self, events: list[Event], result: BatchResult) -> None:
        """Decide ``events``; ``result`` is only extended once everything succeeded."""
        frame = features_from_records([e.features for e in events], self.spec)
        if self.challenger is None:
            live, secs = self._run_variant(self.champion, "champion", events, frame)
            result.decisions.extend(live)
            result.score_seconds += secs
            return
        arms = assign_arms([e.entity_id for e in events], self.arms)
        needs = {
            "champion": (self.champion, ~arms.challenger | arms.shadow),
            "challenger": (self.challenger, arms.challenger | arms.shadow),
        }
        by_arm: dict[str, dict[int, Decision]] = {}
        secs = 0.0
        for arm, (variant, mask) in needs.items():
            idx = np.flatnonzero(mask)
            decided, more = self._run_variant(
                variant, arm, [events[i] for i in idx], frame.iloc[idx].reset_index(drop=True)
            )
            by_arm[arm] = dict(zip(idx.tolist(), decided, strict=True))
            secs += more
        result.decisions.extend(by_arm[arms.arm(i)][i] for i in range(len(events)))
        result.shadow.extend(
            by_arm[shadow_arm][i].model_copy(update={"shadow": True})
            for i in range(len(events))
            if (shadow_arm := arms.shadow_arm(i)) is not None
        )
        result.score_seconds += secs

    def _run_variant(
        self, variant: _Variant, arm: str, events: list[Event], frame: pd.DataFrame
    ) -> tuple[list[Decision], float]:
        if not events:
            return [], 0.0
        t0 = time.perf_counter()
        scores, contributions = self._score(variant.model, frame)
        secs = time.perf_counter() - t0
        parts = decide_batch(
            variant.policy,
            frame,
            scores,
            contributions,
            self.spec.feature_names,
            [e.entity_id for e in events],
        )
        model = variant.model
        decided = build_decisions(
            events,
            parts,
            policy=variant.policy,
            model_name=model.name if model else self.model_name,
            model_version=model.version if model and scores is not None else None,
            arms=[arm] * len(events),  # type: ignore[list-item]
            shadow=False,
            decided_at=datetime.now(UTC),
        )
        return decided, secs

    def _score(
        self, model: ScoringModel | None, frame: pd.DataFrame
    ) -> tuple[npt.NDArray[np.float64] | None, npt.NDArray[np.float64] | None]:
        """Scores and contributions, or (None, None) when the model is absent, fails or is
        too slow: the policy then takes its model-unavailable decision."""
        if model is None:
            return None, None

        def run() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
            return model.score_explain(frame)

        future = self._pool.submit(run)
        try:
            scores, contributions = future.result(timeout=self.score_timeout_s)
        except cf.TimeoutError:
            log.error("scoring timed out after %.1fs; using the fallback", self.score_timeout_s)
            # the stuck thread keeps its slot: give later batches a fresh one
            self._pool = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="score")
            return None, None
        except Exception:
            log.exception("scoring failed; using the fallback decision")
            return None, None
        if not np.all(np.isfinite(scores)):
            log.error("model returned non-finite scores; using the fallback")
            return None, None
        return np.asarray(scores, dtype=np.float64), np.asarray(contributions, dtype=np.float64)

    def _decide_one_by_one(
        self,
        events: list[Event],
        sources: list[RawRecord],
        result: BatchResult,
    ) -> None:
        for event, rec in zip(events, sources, strict=True):
            try:
                self._decide([event], result)
            except Exception as exc:
                result.dlq.append(dead_letter_of(rec, exc, "decide"))


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
