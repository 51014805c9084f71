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
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from workers import metrics
from workers.batcher import MicroBatcher
from workers.engine import BatchResult, DecisionEngine
from workers.group_watch import GroupWatch
from workers.idempotency import IdempotencyUnavailable
from workers.kafka_client import (
    TP,
    ClientError,
    Consumer,
    Membership,
    RawRecord,
    TransactionalProducer,
    make_consumer,
    make_producer,
)
from workers.settings import WorkerSettings

__all__ = ["DecisionLoop", "RevocationTracker"]

log = logging.getLogger(__name__)
REJOIN_POLL_MS = 100
MAX_BACKOFF_S = 5.0  # a broker back after an outage is used within seconds


class RevocationTracker:
    """Records rebalances (a :class:`~workers.kafka_client.RebalanceListener`); never blocks.

    kafka-python calls it on its network thread, confluent-kafka inside ``poll``. The loop
    reconciles its buffer once a rebalance has settled (see :meth:`DecisionLoop._reconcile`).

    ``incremental``: the consumer rebalances cooperatively, so a revocation is complete in
    itself (the partitions kept stay ours; no assignment need follow); otherwise a revocation
    leaves the member without partitions until the next assignment (``pending``).
    """

    def __init__(self, incremental: bool = False) -> None:
        self.incremental = incremental
        # run first on every revocation, on the client's thread: the loop waits there for a
        # commit in flight, which must finish before the partitions can move
        self.before_revoke: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self._revoked: set[TP] = set()
        self.assigned: set[TP] = set()
        self.pending = False  # revoked, new assignment not in yet
        self.pending_since = 0.0  # time.monotonic() of the revocation that set ``pending``

    def on_revoked(self, partitions: list[TP]) -> None:
        if self.before_revoke is not None:
            self.before_revoke()
        log.info("partitions revoked: %s", sorted(p for _, p in partitions))
        with self._lock:
            self._revoked.update(partitions)
            self.assigned.difference_update(partitions)
            if self.incremental:
                return
            if not self.pending:
                self.pending_since = time.monotonic()
            self.pending = True

    def on_assigned(self, partitions: list[TP]) -> None:
        log.info("partitions assigned: %s", sorted(p for _, p in partitions))
        with self._lock:
            self.assigned.update(partitions)
            self.pending = False

    def reset(self) -> None:
        """Forget every partition: the clients were rebuilt and will join afresh."""
        with self._lock:
            self._revoked, self.assigned, self.pending = set(), set(), False

    def take(self) -> set[TP]:
        """Partitions revoked since the last call."""
        with self._lock:
            out, self._revoked = self._revoked, set()
        return out


@dataclass
class _Transaction:
    """The open transaction: what it consumed and what it wrote, until it commits."""

    opened_at: float = field(default_factory=time.monotonic)
    records: list[RawRecord] = field(default_factory=list)
    offsets: dict[TP, int] = field(default_factory=dict)
    results: list[BatchResult] = field(default_factory=list)

    def add(self, batch: list[RawRecord], result: BatchResult) -> None:
        self.records += batch
        self.results.append(result)
        offsets = self.offsets
        for rec in batch:
            tp = (rec.topic, rec.partition)
            if rec.offset >= offsets.get(tp, 0):
                offsets[tp] = rec.offset + 1


class _InFlight:
    """A transaction committing on its own thread (flush, offsets, commit) while the loop
    decides the next batch. A daemon thread: a librdkafka call that never returns (see the
    producer's watchdog) must not keep the process from exiting."""

    def __init__(
        self,
        txn: _Transaction,
        commit: Callable[[_Transaction], None],
        committed: Callable[[_Transaction], None],
        name: str,
    ) -> None:
        self.txn = txn
        self.error: ClientError | None = None
        self._commit = commit
        self._committed = committed
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._commit(self.txn)
        except ClientError as exc:
            self.error = exc
            return
        self._committed(self.txn)  # metrics at once: readers may already see the records

    def wait(self, timeout_s: float | None = None) -> None:
        """Until the commit has finished (or failed), or ``timeout_s`` has passed."""
        self._thread.join(timeout_s)

    def done(self) -> bool:
        """The commit has finished (or failed)."""
        return not self._thread.is_alive()


class DecisionLoop:
    """Runs until :meth:`stop`; finishes (commits or aborts) the transaction in hand first."""

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
        self.flow = settings.flow_name  # the `flow` label of its metrics
        self.before_batch = before_batch
        self._stop = threading.Event()
        # cooperative rebalancing: confluent only (kafka-python calls the listener on its own
        # thread, where a revocation could race a commit; it rebalances eagerly)
        self.cooperative = settings.cooperative_rebalancing and settings.kafka_client == "confluent"
        self.tracker = RevocationTracker(incremental=self.cooperative)
        # pipelining (confluent: its commit round trips run in C, without the GIL): a
        # transaction commits on a thread while the loop decides the next batch; the next
        # transaction opens once it has committed. kafka-python commits in Python: no gain.
        self.pipelined = settings.pipeline_commits and settings.kafka_client == "confluent"
        self.inflight: _InFlight | None = None
        self.group_watch: GroupWatch | None = None
        self.tracker.before_revoke = self._wait_inflight
        self.batcher: MicroBatcher[RawRecord] = MicroBatcher(
            settings.max_batch_size, settings.max_wait_ms
        )
        self.consumer: Consumer | None = None
        self.producer: TransactionalProducer | None = None
        self.txn: _Transaction | None = None
        self.committed_batches = 0
        self._lag_at = 0.0
        self._caught_up = False  # the last poll returned fewer records than it asked for

    # ------------------------------------------------------------------ clients

    def _make_consumer(self) -> Consumer:
        s = self.settings
        return make_consumer(
            s.kafka_client,
            s.kafka,
            group_id=s.group_id,
            topics=[s.topics.events],
            listener=self.tracker,
            max_poll_records=s.max_batch_size,
            max_poll_interval_ms=s.max_poll_interval_ms,
            membership=Membership(
                instance_id=self._client_id if s.static_membership else None,
                session_timeout_ms=s.session_timeout_ms,
                heartbeat_interval_ms=s.heartbeat_interval_ms,
                cooperative=self.cooperative,
            ),
        )

    @property
    def _client_id(self) -> str:
        """This worker's stable identity: transactional id and static group member id."""
        return f"{self.settings.transactional_id_prefix}-{self.worker_name}"

    def _make_producer(self) -> TransactionalProducer:
        s = self.settings
        return make_producer(
            s.kafka_client,
            s.kafka,
            transactional_id=self._client_id,
            transaction_timeout_ms=s.transaction_timeout_ms,
        )

    # ------------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        """Ask the loop to finish the transaction in hand and leave the group."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        """Consume and decide until stopped. Broker outages are retried with back-off."""
        backoff = 0.5
        s = self.settings
        if self.cooperative and s.group_check_s > 0:
            self.group_watch = GroupWatch(
                s.kafka, s.group_id, s.topics.events, s.group_check_s, flow=self.flow
            ).start()
        while not self._stop.is_set():
            try:
                if self.producer is None:
                    self.producer = self._make_producer()
                if self.consumer is None:
                    self.consumer = self._make_consumer()
                self._run_once()
                backoff = 0.5
            except ClientError as exc:
                log.warning("kafka error %s: retrying in %.1fs", exc, backoff)
                self._reset_clients()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
        self._shutdown()

    def _poll_timeout_ms(self) -> int:
        if self.tracker.pending:
            # nothing can be committed while a rebalance is pending: give the client poll
            # time to rejoin rather than spinning on poll(timeout_ms=0)
            return REJOIN_POLL_MS
        timeout = self.batcher.poll_timeout_ms()
        if self.txn is not None:
            left = self.settings.transaction_max_ms - (time.monotonic() - self.txn.opened_at) * 1e3
            timeout = min(timeout, max(int(left), 0))
        return timeout

    def _run_once(self) -> None:
        assert self.consumer is not None
        asked = max(self.batcher.room(), 1)
        records = self.consumer.poll(self._poll_timeout_ms(), asked)
        self._caught_up = len(records) < asked
        if records:
            oldest = min(r.timestamp for r in records)
            self.batcher.add(records, waited=(time.time() * 1000.0 - oldest) / 1000.0)
        if self.inflight is not None and (self.inflight.done() or self.tracker.pending):
            self._settle()
        if self.tracker.pending:
            # a rebalance is under way: a commit now would only be fenced
            self._requeue_transaction()
            stuck = time.monotonic() - self.tracker.pending_since
            if stuck > self.settings.rejoin_timeout_s:
                # seen with kafka-python 3: a rejoin that never completes, the partitions
                # stalled until the member is expelled; a fresh consumer joins cleanly
                raise ClientError(f"rebalance not finished after {stuck:.0f}s; new clients")
            return
        if self.tracker.take():
            self._settle()
            self._requeue_transaction()
            self._reconcile()
        if self.batcher.ready():
            metrics.STAGE_SECONDS.labels(self.flow, "fill").observe(self.batcher.fill_time())
            self._process(self.batcher.drain())
        if self.txn is not None and self._transaction_due():
            self._commit()
        self._update_lag()

    def _transaction_due(self) -> bool:
        assert self.txn is not None
        s = self.settings
        if s.transaction_max_events <= 0 or self._stop.is_set():
            return True  # one transaction per batch
        if s.commit_when_caught_up and self._caught_up:
            return True  # no backlog: a bigger transaction would only add latency
        return (
            len(self.txn.records) >= s.transaction_max_events
            or (time.monotonic() - self.txn.opened_at) * 1e3 >= s.transaction_max_ms
        )

    def _requeue_transaction(self) -> None:
        """A rebalance started or happened: abort the open transaction (its offsets could be
        committed under the new generation while the records are re-read) and put its records
        back in the buffer, where :meth:`_reconcile` keeps only those that still follow on."""
        if self.txn is None:
            return
        assert self.producer is not None
        txn, self.txn = self.txn, None
        metrics.TRANSACTIONS.labels(self.flow, "aborted").inc()
        self.producer.abort_transaction()
        self.batcher.push_front(txn.records)
        log.info("rebalance: aborted the open transaction of %d records", len(txn.records))

    def _reconcile(self) -> None:
        """After a rebalance, keep buffered records only where they still follow on.

        A partition handed straight back keeps its fetch position in kafka-python 3, so its
        buffered records are still the next ones to decide: dropping them would skip them.
        A partition that moved away, or whose position was reset to the committed offset
        (confluent-kafka), is re-read by its owner: keeping its records would decide them twice
        (and a reset position already past our first record is moved back to it).
        """
        assert self.consumer is not None
        # a reset position may already have re-read records we hold: keep one copy each
        twins = self.batcher.dedupe(lambda r: (r.topic, r.partition, r.offset))
        first: dict[TP, int] = {}
        last: dict[TP, int] = {}
        for rec in self.batcher.peek():
            key = (rec.topic, rec.partition)
            first[key] = min(first.get(key, rec.offset), rec.offset)
            last[key] = max(last.get(key, rec.offset), rec.offset)
        keep: set[TP] = set()
        for tp in self.consumer.assignment():
            if tp not in last:
                continue
            position = self.consumer.position(tp)
            if position == last[tp] + 1:
                keep.add(tp)
            elif position is None or position > first[tp]:
                # part of what we hold was fetched again: read it all again from the start
                self.consumer.seek(tp, first[tp])
        dropped = self.batcher.drop(lambda r: (r.topic, r.partition) not in keep)
        log.info(
            "rebalance: kept buffered records of %d partitions, dropped %d (+%d re-read twins)",
            len(keep),
            len(dropped),
            twins,
        )

    def _shutdown(self) -> None:
        if self.consumer is not None and self.producer is not None:
            try:  # finish the batch in hand and commit, as a clean stop should
                self._settle()
                if len(self.batcher):
                    self._process(self.batcher.drain_all())
                if self.txn is not None:
                    self._commit()
                self._settle()
            except ClientError:
                log.warning("could not finish the last batch; its events will be re-read")
        self._reset_clients()
        if self.group_watch is not None:
            self.group_watch.stop()
        self.engine.close()
        log.info("decision loop stopped after %d batches", self.committed_batches)

    def _reset_clients(self) -> None:
        if self.inflight is not None:
            # its producer is closed below; whatever it did not commit is re-read by the group
            self.inflight.wait(5.0)
            self.inflight = None
        closers = []
        if self.consumer is not None:
            closers.append(self.consumer.close)  # leaves the group: partitions move at once
        if self.producer is not None:
            closers.append(self.producer.close)
        for close in closers:
            try:
                close()
            except Exception:  # closing a broken client must not mask the real error
                log.debug("error closing a kafka client", exc_info=True)
        self.consumer = None
        self.producer = None
        self.txn = None
        self.batcher.drain_all()
        self.tracker.reset()

    # ------------------------------------------------------------------ one batch

    def _process(self, batch: list[RawRecord]) -> None:
        """Decide ``batch`` and write its records into the open transaction."""
        assert self.consumer is not None and self.producer is not None
        if self.before_batch is not None:
            self.before_batch(self.engine)  # model hot-swap happens here, between batches
        metrics.EVENTS_CONSUMED.labels(self.flow).inc(len(batch))
        metrics.BATCH_SIZE.labels(self.flow).observe(len(batch))
        try:
            with metrics.STAGE_SECONDS.labels(self.flow, "decide").time():
                result = self.engine.process(batch)
        except IdempotencyUnavailable as exc:
            # never decide unchecked: put everything back and try again shortly
            metrics.IDEMPOTENCY_UNAVAILABLE.labels(self.flow).inc()
            log.warning("event-id claims unavailable (%s): batch put back", exc)
            if not self._settle(batch):
                return  # the commit in flight failed: everything is read again anyway
            self.batcher.push_front(batch)
            self._abort_and_rewind()
            self._stop.wait(1.0)
            return
        if self.txn is None and not self._settle(batch):
            return  # the commit in flight failed: this batch is read again with its records
        t0 = time.perf_counter()
        try:
            if self.txn is None:
                self.producer.begin_transaction()
                self.txn = _Transaction()
            self.txn.add(batch, result)
            send = self.producer.send
            for topic, key, value in result.records(self.settings.topics):
                send(topic, key, value)
        except ClientError as exc:
            self._failed(exc)
            return
        metrics.STAGE_SECONDS.labels(self.flow, "produce").observe(time.perf_counter() - t0)

    def _commit(self) -> None:
        """Commit the open transaction: its records + the consumed offsets, atomically (on a
        thread of its own when pipelined: :meth:`_settle` collects the outcome)."""
        assert self.consumer is not None and self.producer is not None and self.txn is not None
        txn, self.txn = self.txn, None
        metadata = self.consumer.group_metadata()  # on this thread, with the partitions ours
        producer = self.producer

        def commit(t: _Transaction) -> None:
            self._commit_transaction(producer, t, metadata)

        if self.pipelined:
            self.inflight = _InFlight(txn, commit, self._committed, f"commit-{self.flow}")
            return
        try:
            commit(txn)
        except ClientError as exc:
            self.txn = txn
            self._failed(exc)
            return
        self._committed(txn)

    def _commit_transaction(
        self, p: TransactionalProducer, txn: _Transaction, metadata: object
    ) -> None:
        stage = metrics.STAGE_SECONDS
        t0 = time.perf_counter()
        p.flush()  # every record acknowledged before the offsets join the transaction
        t1 = time.perf_counter()
        p.send_offsets_to_transaction(txn.offsets, metadata)
        t2 = time.perf_counter()
        p.commit_transaction()
        stage.labels(self.flow, "flush").observe(t1 - t0)
        stage.labels(self.flow, "offsets").observe(t2 - t1)
        stage.labels(self.flow, "commit").observe(time.perf_counter() - t2)

    def _committed(self, txn: _Transaction) -> None:
        self.committed_batches += len(txn.results)
        metrics.TRANSACTIONS.labels(self.flow, "committed").inc()
        for result in txn.results:
            self._observe(result)

    def _wait_inflight(self) -> None:
        """Block until the commit in flight (if any) has finished: run on every revocation,
        before the partitions move (its outcome is collected by :meth:`_settle`)."""
        inflight = self.inflight
        if inflight is not None:
            inflight.wait()

    def _settle(self, batch: list[RawRecord] | None = None) -> bool:
        """Collect the commit in flight: True when it committed (or there was none). When it
        failed, its transaction is aborted and read again from its first records, with
        ``batch`` (records decided meanwhile, not yet written) and the buffer after them."""
        inflight, self.inflight = self.inflight, None
        if inflight is None:
            return True
        inflight.wait()
        if inflight.error is None:
            return True  # its metrics were counted on its thread
        if batch:
            self.batcher.push_front(batch)
        self.txn = inflight.txn
        self._failed(inflight.error)
        return False

    def _failed(self, exc: ClientError) -> None:
        metrics.TRANSACTIONS.labels(self.flow, "aborted").inc()
        log.warning("transaction failed (%s): aborting, its events will be decided again", exc)
        self._abort_and_rewind()

    def _abort_and_rewind(self) -> None:
        """Abort the open transaction and rewind to the first unprocessed offsets.

        Raises ClientError when the producer cannot abort (fenced, broker gone): the caller
        then rebuilds both clients, and the group re-reads from the committed offsets.
        """
        assert self.consumer is not None and self.producer is not None
        txn, self.txn = self.txn, None
        if txn is not None:
            self.producer.abort_transaction()
        starts: dict[TP, int] = {}
        for rec in [*(txn.records if txn else []), *self.batcher.drain_all()]:
            tp = (rec.topic, rec.partition)
            starts[tp] = min(starts.get(tp, rec.offset), rec.offset)
        owned = self.tracker.assigned
        for tp, offset in starts.items():
            if tp in owned:
                self.consumer.seek(tp, offset)
        self._stop.wait(0.2)

    def _observe(self, result: BatchResult) -> None:
        metrics.SCORE_SECONDS.labels(self.flow).observe(result.score_seconds)
        for labels, n in result.decision_counts().items():  # one increment per label set
            metrics.DECISIONS.labels(self.flow, *labels).inc(n)
        metrics.E2E_LATENCY.labels(self.flow).observe_many(
            np.asarray(result.latencies_ms()) / 1000.0
        )
        for dl in result.dlq:
            metrics.DLQ.labels(self.flow, dl.reason, dl.stage).inc()
        if result.duplicates:
            metrics.DUPLICATES.labels(self.flow).inc(len(result.duplicates))

    def _update_lag(self) -> None:
        now = time.monotonic()
        if self.consumer is None or now - self._lag_at < 5.0:
            return
        self._lag_at = now
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)
            if high is not None:
                position = self.consumer.position(tp)
                if position is not None:
                    metrics.LAG.labels(self.flow, str(tp[1])).set(max(high - position, 0))
