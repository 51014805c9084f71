"""The consume -> decide -> produce loop, exactly once with Kafka transactions.

One loop per worker process, on its own thread (started by the Celery bootstep). Per batch:
begin transaction -> decisions, shadow decisions and dead letters -> the consumed offsets with
the consumer's group metadata -> commit. Any failure aborts the transaction and rewinds the
consumer to the batch start, so the batch is decided again (by us or by the partition's next
owner) and committed output holds each event once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from decisioning.contracts import encode_record
from workers import metrics
from workers.batcher import MicroBatcher
from workers.engine import BatchResult, DecisionEngine, RawRecord
from workers.kafka_client import Consumer, TransactionalProducer
from workers.settings import WorkerSettings

__all__ = ["DecisionLoop", "RevocationTracker"]

log = logging.getLogger(__name__)
REJOIN_POLL_MS = 100


class RevocationTracker(ConsumerRebalanceListener):  # type: ignore[misc]
    """Records rebalances; never blocks the client's network thread.

    The loop reconciles its buffer once a rebalance has settled (see
    :meth:`DecisionLoop._reconcile`). A batch in flight during a rebalance is fenced by the
    group metadata sent with its offsets, aborted, and decided again.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._revoked: set[tuple[str, int]] = set()
        self.assigned: set[tuple[str, int]] = set()
        self.pending = False  # revoked, new assignment not in yet
        self.pending_since = 0.0  # time.monotonic() of the revocation that set ``pending``

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        revoked = list(revoked)
        log.info("partitions revoked: %s", sorted(tp.partition for tp in revoked))
        with self._lock:
            for tp in revoked:
                self._revoked.add((tp.topic, tp.partition))
                self.assigned.discard((tp.topic, tp.partition))
            if not self.pending:
                self.pending_since = time.monotonic()
            self.pending = True

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        assigned = list(assigned)
        log.info("partitions assigned: %s", sorted(tp.partition for tp in assigned))
        with self._lock:
            self.assigned |= {(tp.topic, tp.partition) for tp in assigned}
            self.pending = False

    def reset(self) -> None:
        """Forget every partition: the clients were rebuilt and will join afresh."""
        with self._lock:
            self._revoked, self.assigned, self.pending = set(), set(), False

    def take(self) -> set[tuple[str, int]]:
        """Partitions revoked since the last call."""
        with self._lock:
            out, self._revoked = self._revoked, set()
        return out


class DecisionLoop:
    """Runs until :meth:`stop`; finishes (commits or aborts) the batch in hand first."""

    def __init__(
        self,
        settings: WorkerSettings,
        engine: DecisionEngine,
        *,
        worker_name: str,
        before_batch: Callable[[DecisionEngine], None] | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.worker_name = worker_name
        self.before_batch = before_batch
        self._stop = threading.Event()
        self.tracker = RevocationTracker()
        self.batcher: MicroBatcher[RawRecord] = MicroBatcher(
            settings.max_batch_size, settings.max_wait_ms
        )
        self.consumer: Consumer | None = None
        self.producer: TransactionalProducer | None = None
        self.committed_batches = 0
        self._lag_at = 0.0

    # ------------------------------------------------------------------ clients

    def _make_consumer(self) -> KafkaConsumer:
        s = self.settings
        consumer = KafkaConsumer(
            group_id=s.group_id,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            max_poll_interval_ms=s.max_poll_interval_ms,
            max_poll_records=s.max_batch_size,
            fetch_max_bytes=16 * 1024 * 1024,
            metadata_max_age_ms=30_000,  # notice new partitions within 30 s
            **s.kafka.client_options(),
        )
        # Fetch the topic's metadata before joining: a group leader without it assigns no
        # partitions at all, and nothing is consumed until the next metadata refresh.
        deadline = time.monotonic() + 30
        while not consumer.partitions_for_topic(s.topics.events):
            if time.monotonic() > deadline:
                raise KafkaError(f"topic {s.topics.events!r} has no partitions (does it exist?)")
            time.sleep(0.5)
        consumer.subscribe([s.topics.events], listener=self.tracker)
        return consumer

    def _make_producer(self) -> KafkaProducer:
        s = self.settings
        producer = KafkaProducer(
            transactional_id=f"{s.transactional_id_prefix}-{self.worker_name}",
            transaction_timeout_ms=s.transaction_timeout_ms,
            linger_ms=5,
            batch_size=256 * 1024,
            compression_type=None,
            max_request_size=4 * 1024 * 1024,
            **s.kafka.client_options(),
        )
        producer.init_transactions()  # fences an earlier instance, aborts its open transaction
        return producer

    # ------------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        """Ask the loop to finish the batch in hand and leave the group."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        """Consume and decide until stopped. Broker outages are retried with back-off."""
        backoff = 0.5
        while not self._stop.is_set():
            try:
                if self.producer is None:
                    self.producer = self._make_producer()
                if self.consumer is None:
                    self.consumer = self._make_consumer()
                self._run_once()
                backoff = 0.5
            except KafkaError as exc:
                log.warning("kafka error %s: retrying in %.1fs", exc, backoff)
                self._reset_clients()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
        self._shutdown()

    def _run_once(self) -> None:
        assert self.consumer is not None
        # Nothing can be committed while a rebalance is pending: give the client poll time to
        # rejoin rather than spinning on poll(timeout_ms=0), which a ready batch would ask for.
        timeout_ms = REJOIN_POLL_MS if self.tracker.pending else self.batcher.poll_timeout_ms()
        polled = self.consumer.poll(timeout_ms=timeout_ms, max_records=max(self.batcher.room(), 1))
        now_ms = time.time() * 1000.0
        for msgs in polled.values():
            self.batcher.add(
                (RawRecord(m.topic, m.partition, m.offset, m.key, m.value) for m in msgs),
                waited=(now_ms - msgs[0].timestamp) / 1000.0 if msgs else 0.0,
            )
        if self.tracker.pending:
            # a rebalance is under way: a commit now would only be fenced
            stuck = time.monotonic() - self.tracker.pending_since
            if stuck > self.settings.rejoin_timeout_s:
                # seen with kafka-python 3: a rejoin that never completes, the partitions
                # stalled until the member is expelled; a fresh consumer joins cleanly
                raise KafkaError(f"rebalance not finished after {stuck:.0f}s; new clients")
            return
        if self.tracker.take():
            self._reconcile()
        if self.batcher.ready():
            metrics.STAGE_SECONDS.labels("fill").observe(self.batcher.fill_time())
            self._process(self.batcher.drain())
        self._update_lag()

    def _reconcile(self) -> None:
        """After a rebalance, keep buffered records only where they still follow on.

        A partition handed straight back keeps its fetch position in kafka-python 3, so its
        buffered records are still the next ones to decide: dropping them would skip them.
        A partition that moved away, or whose position was reset to the committed offset, is
        re-read by its owner: keeping its records would decide them twice.
        """
        assert self.consumer is not None
        # a reset position may already have re-read records we hold: keep one copy each
        twins = self.batcher.dedupe(lambda r: (r.topic, r.partition, r.offset))
        last: dict[tuple[str, int], int] = {}
        for rec in self.batcher.peek():
            key = (rec.topic, rec.partition)
            last[key] = max(last.get(key, rec.offset), rec.offset)
        keep: set[tuple[str, int]] = set()
        for tp in self.consumer.assignment():
            key = (tp.topic, tp.partition)
            if key in last and self.consumer.position(tp, timeout_ms=5000) == last[key] + 1:
                keep.add(key)
        dropped = self.batcher.drop(lambda r: (r.topic, r.partition) not in keep)
        log.info(
            "rebalance: kept buffered records of %d partitions, dropped %d (+%d re-read twins)",
            len(keep),
            len(dropped),
            twins,
        )

    def _shutdown(self) -> None:
        if len(self.batcher) and self.consumer is not None and self.producer is not None:
            try:  # finish the batch in hand, as a clean stop should
                self._process(self.batcher.drain())
            except KafkaError:
                log.warning("could not finish the last batch; its events will be re-read")
        self._reset_clients()
        self.engine.close()
        log.info("decision loop stopped after %d batches", self.committed_batches)

    def _reset_clients(self) -> None:
        closers = []
        if self.consumer is not None:
            closers.append(self.consumer.close)  # leaves the group: partitions move at once
        if self.producer is not None:
            closers.append(lambda: self.producer.close(timeout=5))  # type: ignore[union-attr]
        for close in closers:
            try:
                close()
            except Exception:  # closing a broken client must not mask the real error
                log.debug("error closing a kafka client", exc_info=True)
        self.consumer = None
        self.producer = None
        self.batcher.drain_all()
        self.tracker.reset()

    # ------------------------------------------------------------------ one batch

    def _process(self, batch: list[RawRecord]) -> None:
        assert self.consumer is not None and self.producer is not None
        if self.before_batch is not None:
            self.before_batch(self.engine)  # model hot-swap happens here, between batches
        metrics.EVENTS_CONSUMED.inc(len(batch))
        metrics.BATCH_SIZE.observe(len(batch))
        with metrics.STAGE_SECONDS.labels("decide").time():
            result = self.engine.process(batch)
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for rec in batch:
            tp = TopicPartition(rec.topic, rec.partition)
            prev = offsets.get(tp)
            if prev is None or rec.offset + 1 > prev.offset:
                offsets[tp] = OffsetAndMetadata(rec.offset + 1, "", -1)
        try:
            self._commit(result, offsets)
        except KafkaError as exc:
            metrics.TRANSACTIONS.labels("aborted").inc()
            log.warning("transaction failed (%s): aborting, the batch will be decided again", exc)
            self._abort_and_rewind(batch)
            return
        self.committed_batches += 1
        metrics.TRANSACTIONS.labels("committed").inc()
        self._observe(result)

    def _commit(
        self, result: BatchResult, offsets: dict[TopicPartition, OffsetAndMetadata]
    ) -> None:
        assert self.consumer is not None and self.producer is not None
        topics = self.settings.topics
        p = self.producer
        stage = metrics.STAGE_SECONDS
        t0 = time.perf_counter()
        p.begin_transaction()
        futures = []
        for d in result.decisions:
            value = encode_record(d)
            futures.append(p.send(topics.decisions, key=d.entity_id.encode(), value=value))
        for d in result.shadow:
            value = encode_record(d)
            futures.append(p.send(topics.shadow, key=d.entity_id.encode(), value=value))
        for dl in result.dlq:
            key = dl.source_key.encode() if dl.source_key is not None else None
            futures.append(p.send(topics.dlq, key=key, value=encode_record(dl)))
        # Every record must be acknowledged before the offsets join the transaction: after a
        # broker crash kafka-python can bump the producer epoch, fail the records and still
        # commit, which would commit the offsets of decisions that were never written.
        p.flush()
        failed = [f for f in futures if not f.succeeded()]
        if failed:
            raise KafkaError(
                f"{len(failed)} of {len(futures)} records not written: {failed[0].exception!r}"
            )
        t1 = time.perf_counter()
        p.send_offsets_to_transaction(offsets, self.consumer.group_metadata())
        t2 = time.perf_counter()
        p.commit_transaction()
        stage.labels("produce").observe(t1 - t0)
        stage.labels("offsets").observe(t2 - t1)
        stage.labels("commit").observe(time.perf_counter() - t2)

    def _abort_and_rewind(self, batch: list[RawRecord]) -> None:
        """Abort the open transaction and rewind to the first unprocessed offsets.

        Raises KafkaError when the producer cannot abort (fenced, broker gone): the caller then
        rebuilds both clients, and the group re-reads from the committed offsets.
        """
        assert self.consumer is not None and self.producer is not None
        self.producer.abort_transaction()
        starts: dict[TopicPartition, int] = {}
        for rec in [*batch, *self.batcher.drain_all()]:
            tp = TopicPartition(rec.topic, rec.partition)
            starts[tp] = min(starts.get(tp, rec.offset), rec.offset)
        owned = self.tracker.assigned
        for tp, offset in starts.items():
            if (tp.topic, tp.partition) in owned:
                self.consumer.seek(tp, offset)
        self._stop.wait(0.2)

    def _observe(self, result: BatchResult) -> None:
        metrics.SCORE_SECONDS.observe(result.score_seconds)
        counts = Counter((d.decision, d.arm, "false") for d in result.decisions)
        counts.update((d.decision, d.arm, "true") for d in result.shadow)
        for labels, n in counts.items():  # one increment per label set, not per decision
            metrics.DECISIONS.labels(*labels).inc(n)
        for d in result.decisions:
            metrics.E2E_LATENCY.observe(d.latency_ms / 1000.0)
        for dl in result.dlq:
            metrics.DLQ.labels(dl.reason, dl.stage).inc()

    def _update_lag(self) -> None:
        now = time.monotonic()
        if self.consumer is None or now - self._lag_at < 5.0:
            return
        self._lag_at = now
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)
            if high is not None:
                position: Any = self.consumer.position(tp, timeout_ms=1000)
                if position is not None:
                    metrics.LAG.labels(str(tp.partition)).set(max(high - position, 0))
