"""Plumbing for the benchmark: topics, events, producers, a committed-output reader,
child processes (workers, loops) and their memory.

Every run uses its own topic names, consumer groups, transactional ids and Celery queues
(``bench.<run id>.*``), and :class:`Run` deletes its topics, groups and queues at the end.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import re
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from devtools.launch import ChildProcess, worker_command
from workers.settings import Topics

__all__ = [
    "BurstProducer",
    "Child",
    "EventSource",
    "OutputReader",
    "Run",
    "burst_produce",
    "no_gc_pauses",
    "paced_produce",
    "percentiles",
    "stage_snapshot",
    "stage_summary",
]

REPO = Path(__file__).resolve().parents[1]
_EVENT_ID = re.compile(rb'"event_id":"([^"]+)"')


@contextlib.contextmanager
def no_gc_pauses() -> Iterator[None]:
    """Collect now, then keep this process's cyclic garbage collector off until the block
    ends (reference counting still frees everything else).

    The paced producer and the reader are threads of this process, which holds ~500k objects:
    a full collection took 90-200 ms here, and while it ran events went out late and
    decisions were read late, charged to the measured system's latency (at 20k ev/s one such
    pause delays ~3,000 events: most of a 20-second point's 1 %)."""
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def percentiles(values: list[float], qs: tuple[float, ...] = (50, 99)) -> dict[str, float]:
    """``{"p50": .., "p99": ..}`` of ``values`` (NaN when empty)."""
    if not values:
        return {f"p{q:g}": float("nan") for q in qs}
    arr = np.asarray(values, dtype=np.float64)
    return {f"p{q:g}": float(np.percentile(arr, q)) for q in qs}


StageSnapshot = dict[str, dict[str, float]]


def stage_snapshot(port: int) -> StageSnapshot:
    """The worker's ``decisionflow_batch_stage_seconds`` histogram: per stage, its count, sum
    and cumulative bucket counts (keyed by upper bound), scraped from /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: StageSnapshot = {}
    for family in text_string_to_metric_families(text):
        if family.name != "decisionflow_batch_stage_seconds":
            continue
        for sample in family.samples:
            stage = out.setdefault(sample.labels["stage"], {})
            if sample.name.endswith("_bucket"):
                stage[sample.labels["le"]] = sample.value
            elif sample.name.endswith("_count"):
                stage["count"] = sample.value
            elif sample.name.endswith("_sum"):
                stage["sum"] = sample.value
    return out


def stage_summary(before: StageSnapshot, after: StageSnapshot) -> list[dict[str, Any]]:
    """Per stage between two snapshots: batches, mean ms and the p99 bucket bound in ms."""
    rows = []
    for stage, now in after.items():
        was = before.get(stage, {})
        count = now.get("count", 0.0) - was.get("count", 0.0)
        if count <= 0:
            continue
        total = now.get("sum", 0.0) - was.get("sum", 0.0)
        bounds = sorted((float(k), k) for k in now if k not in ("count", "sum"))
        p99 = float("inf")
        for bound, key in bounds:
            if now[key] - was.get(key, 0.0) >= 0.99 * count:
                p99 = bound
                break
        rows.append(
            {"stage": stage, "batches": int(count), "mean_ms": 1000 * total / count,
             "p99_le_ms": 1000 * p99}
        )  # fmt: skip
    return rows


# --------------------------------------------------------------------------- events


class EventSource:
    """Serialised events built from the real credit table (rows cycled), keyed by entity."""

    def __init__(self) -> None:
        from models.data import load_frame
        from models.spec import load_spec
        from workers.producer import event_payload, events_from_frame

        spec = load_spec("credit_data")
        self._rows = list(
            events_from_frame(load_frame(spec), spec.feature_names, spec.entity_key.column)
        )
        self._payload = event_payload

    def make(self, prefix: str, n: int) -> list[tuple[bytes, bytes]]:
        """``n`` (key, value) pairs; event ids are ``<prefix><index>``."""
        out = []
        for i in range(n):
            entity_id, features = self._rows[i % len(self._rows)]
            payload = self._payload(entity_id, features, event_id=f"{prefix}{i}")
            out.append((entity_id.encode(), json.dumps(payload, allow_nan=False).encode()))
        return out


def _confluent_producer(bootstrap: str, linger_ms: int) -> Any:
    from confluent_kafka import Producer

    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": linger_ms,
            "enable.idempotence": True,
            "queue.buffering.max.messages": 1_000_000,
        }
    )


class BurstProducer:
    """Sends lists of events as fast as the client can (connected once, reused)."""

    def __init__(self, bootstrap: str) -> None:
        self._kp: Any = None
        try:
            self._p: Any = _confluent_producer(bootstrap, 5)
        except ImportError:
            from kafka import KafkaProducer

            self._p = None
            self._kp = KafkaProducer(
                bootstrap_servers=bootstrap, linger_ms=5, batch_size=256 * 1024
            )

    def send(self, topic: str, events: list[tuple[bytes, bytes]]) -> float:
        """Send and flush ``events``; returns the seconds it took."""
        t0 = time.perf_counter()
        if self._kp is not None:
            for key, value in events:
                self._kp.send(topic, key=key, value=value)
            self._kp.flush()
            return time.perf_counter() - t0
        for key, value in events:
            while True:
                try:
                    self._p.produce(topic, value=value, key=key)
                    break
                except BufferError:
                    self._p.poll(0.01)
        self._p.flush(60)
        return time.perf_counter() - t0

    def close(self) -> None:
        """Flush and drop the client."""
        if self._kp is not None:
            self._kp.close()
        else:
            self._p.flush(10)


def burst_produce(bootstrap: str, topic: str, events: list[tuple[bytes, bytes]]) -> float:
    """One-off :class:`BurstProducer` send; returns the seconds it took (flushed)."""
    producer = BurstProducer(bootstrap)
    try:
        return producer.send(topic, events)
    finally:
        producer.close()


# The paced load generator sends what is due every PACE_TICK_S, batched by librdkafka's default
# linger (5 ms): on this 2-core host it shares the cores with the worker it measures, and one
# wake-up per event with a 1 ms linger cost it ~42 µs and the broker ~53 µs of CPU per event at
# 11k ev/s (1 core in all), against ~10 + 18 µs this way. Each event is still due at
# t0 + i / rate: the up to 2 + 5 ms it waits here count in its latency.
PACE_TICK_S = 0.002
PACE_LINGER_MS = 5


def pace(wait_s: float) -> None:
    """Sleep until the next event is due (``wait_s`` from now), at least a tick, at most 5 ms;
    nothing when it is already due."""
    if wait_s > 0:
        time.sleep(max(min(wait_s, 0.005), PACE_TICK_S))


def paced_produce(
    bootstrap: str,
    topic: str,
    events: list[tuple[bytes, bytes]],
    rate: float,
    warm_topic: str | None = None,
) -> tuple[float, float]:
    """Open loop: event ``i`` is due at ``t0 + i / rate`` whatever the consumer does.

    With ``warm_topic`` the producer first writes one record there and waits for it, so its
    connection, producer id and metadata exist before ``t0`` (otherwise its start-up, ~0.5 s,
    is charged to the first events' latency). Returns ``(t0, achieved_rate)`` on the
    ``time.perf_counter`` clock.
    """
    try:
        p = _confluent_producer(bootstrap, PACE_LINGER_MS)
        p.list_topics(topic, timeout=30)
        send: Callable[[bytes, bytes], None] = lambda k, v: p.produce(topic, value=v, key=k)  # noqa: E731
        serve: Callable[[], object] = lambda: p.poll(0)  # noqa: E731
        flush: Callable[[], object] = lambda: p.flush(30)  # noqa: E731
        warm: Callable[[str], object] = lambda t: (p.produce(t, value=b"warm-up"), p.flush(30))  # noqa: E731
    except ImportError:
        from kafka import KafkaProducer

        kp = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=PACE_LINGER_MS)
        send = lambda k, v: kp.send(topic, key=k, value=v)  # noqa: E731
        serve = lambda: None  # noqa: E731
        flush = kp.flush
        warm = lambda t: (kp.send(t, value=b"warm-up"), kp.flush())  # noqa: E731
    if warm_topic is not None:
        warm(warm_topic)
    t0 = time.perf_counter()
    i = 0
    n = len(events)
    while i < n:
        due = min(n, int((time.perf_counter() - t0) * rate) + 1)
        while i < due:
            send(*events[i])
            i += 1
        serve()
        pace(t0 + i / rate - time.perf_counter())
    elapsed = time.perf_counter() - t0
    flush()
    return t0, n / elapsed if elapsed > 0 else float("nan")


# --------------------------------------------------------------------------- reader


class OutputReader:
    """Reads committed records (``read_committed``) of some topics on a thread.

    Counts records and, when ``track_ids``, notes the receive time of each event id (parsed
    from the decision JSON) for end-to-end latency. Uses confluent-kafka when installed (so
    the reader is never the bottleneck), else kafka-python.
    """

    def __init__(self, bootstrap: str, topics: list[str], track_ids: bool = False) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.track_ids = track_ids
        self.count = 0
        self.received: dict[bytes, float] = {}
        self.last_at = 0.0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="bench-reader", daemon=True)
        self._ready = threading.Event()
        self._thread.start()
        self._ready.wait(30)

    def _run(self) -> None:
        try:
            from confluent_kafka import Consumer
        except ImportError:
            self._run_kafka_python()
            return
        c = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"bench-reader-{uuid.uuid4().hex[:8]}",
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 20,
            }
        )
        c.subscribe(self.topics)
        self._ready.set()
        try:
            while not self._stop.is_set():
                # consume() returns when it has num_messages or at the timeout: keep the
                # timeout short, or the reader's own wait is charged to every latency
                msgs = c.consume(num_messages=10_000, timeout=0.005)
                now = time.perf_counter()
                good = [m for m in msgs if m.error() is None]
                self._note(now, [m.value() for m in good])
        finally:
            c.close()

    def _run_kafka_python(self) -> None:
        from kafka import KafkaConsumer

        c = KafkaConsumer(
            *self.topics,
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            isolation_level="read_committed",
            fetch_max_wait_ms=20,
        )
        self._ready.set()
        try:
            while not self._stop.is_set():
                polled = c.poll(timeout_ms=50, max_records=10_000)
                now = time.perf_counter()
                self._note(now, [m.value for msgs in polled.values() for m in msgs])
        finally:
            c.close()

    def _note(self, now: float, values: list[bytes | None]) -> None:
        if not values:
            return
        with self._lock:
            self.count += len(values)
            self.last_at = now
            if self.track_ids:
                for v in values:
                    if v and (m := _EVENT_ID.search(v)):
                        self.received.setdefault(m.group(1), now)

    def wait_for(self, n: int, timeout: float, alive: Callable[[], None] | None = None) -> float:
        """Wait until ``n`` records were read; returns the perf_counter time of the n-th."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.count >= n:
                    return self.last_at
            if alive is not None:
                alive()
            time.sleep(0.01)
        raise TimeoutError(f"read {self.count}/{n} records of {self.topics} in {timeout:.0f}s")

    def latencies_ms(self, prefix: str, due: Callable[[int], float]) -> list[float]:
        """Receive time minus ``due(i)`` for every event id ``<prefix><i>`` seen."""
        pre = prefix.encode()
        with self._lock:
            items = list(self.received.items())
        return [(t - due(int(eid[len(pre) :]))) * 1000.0 for eid, t in items if eid.startswith(pre)]

    def close(self) -> None:
        """Stop the thread and close the consumer."""
        self._stop.set()
        self._thread.join(10)


# --------------------------------------------------------------------------- processes


class Child(ChildProcess):
    """A child process (a worker or a loop) with its own log file and an RSS probe."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log_dir: Path) -> None:
        super().__init__(name, cmd, env, log_dir)
        self.ps = psutil.Process(self.proc.pid)

    def rss_mib(self) -> float:
        """Resident set size now, MiB."""
        return float(self.ps.memory_info().rss) / 2**20


@dataclass
class Run:
    """One benchmark run: its id, directories, stack addresses and everything to clean up."""

    bootstrap: str
    redis_url: str
    out_dir: Path
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    topics: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    children: list[Child] = field(default_factory=list)

    def __post_init__(self) -> None:
        from kafka.admin import KafkaAdminClient

        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir = self.out_dir / "logs"
        self.log_dir.mkdir(exist_ok=True)
        self.admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)

    # ---- names
    def name(self, phase: str) -> str:
        """A name unique to this run and phase (for groups, ids, queues)."""
        return f"bench-{self.run_id}-{phase}"

    def make_topics(self, phase: str, partitions: int) -> Topics:
        """Fresh events/decisions/shadow/dlq/outcomes topics for one phase."""
        from kafka.admin import NewTopic

        base = f"bench.{self.run_id}.{phase}"
        topics = Topics(
            events=f"{base}.events",
            decisions=f"{base}.decisions",
            shadow=f"{base}.shadow",
            dlq=f"{base}.dlq",
            outcomes=f"{base}.outcomes",
        )
        specs = [
            NewTopic(topics.events, partitions, 1),
            NewTopic(topics.decisions, partitions, 1),
            NewTopic(topics.shadow, partitions, 1),
            NewTopic(topics.dlq, 1, 1),
            NewTopic(topics.outcomes, 1, 1),
        ]
        self.admin.create_topics(specs)
        self.topics += [s.name for s in specs]
        return topics

    def env(self, topics: Topics, group: str, registry: Path, **extra: str) -> dict[str, str]:
        """Environment of a child: its topics, group, registry, id prefix and settings."""
        env = {
            **os.environ,
            "DECISIONFLOW_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "DECISIONFLOW_REDIS_URL": self.redis_url,
            "DECISIONFLOW_GROUP_ID": group,
            "DECISIONFLOW_REGISTRY_URL": str(registry),
            "DECISIONFLOW_TRANSACTIONAL_ID_PREFIX": group,
            "DECISIONFLOW_MODEL_NAME": "credit_data",
            "PYTHONUNBUFFERED": "1",
            **topics.env(),
        }
        env.update(extra)
        self.groups.append(group)
        return env

    # ---- children
    def start(self, name: str, cmd: list[str], env: dict[str, str]) -> Child:
        """Start a child process (stopped by :meth:`close` at the latest)."""
        child = Child(name, cmd, env, self.log_dir)
        self.children.append(child)
        return child

    def start_worker(self, name: str, env: dict[str, str]) -> Child:
        """A real decision worker: ``decisionflow worker`` (Celery, pool solo, the decide
        loop on the client named by ``DECISIONFLOW_KAFKA_CLIENT`` in ``env``)."""
        queue = self.name(f"q-{name}")
        return self.start(name, worker_command(name, queue), env)

    def stop_children(self) -> None:
        """Stop every child still running (warm shutdown first)."""
        for child in self.children:
            with contextlib.suppress(Exception):  # keep stopping the others
                child.stop()
        self.children = []

    def wait_group(
        self, group: str, members: int, children: list[Child], timeout: float = 180
    ) -> float:
        """Wait until ``group`` is Stable with ``members`` members that all own partitions."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            for c in children:
                c.check()
            try:
                info = self.admin.describe_groups([group]).get(group) or {}
            except Exception:
                info = {}
            if info.get("group_state") == "Stable" and len(info.get("members") or []) == members:
                return time.monotonic() - t0
            time.sleep(0.5)
        raise TimeoutError(f"group {group} not stable with {members} members in {timeout:.0f}s")

    # ---- clean-up
    def close(self) -> None:
        """Stop children, delete topics, consumer groups and Celery queues of this run."""
        self.stop_children()
        if self.topics:
            try:
                self.admin.delete_topics(self.topics)
            except Exception as exc:
                print(f"warning: could not delete topics: {exc}", file=sys.stderr)
        if self.groups:
            for group in set(self.groups):
                with contextlib.suppress(Exception):  # a group that never committed
                    self.admin.delete_groups([group])
        self.admin.close()
        try:
            self._delete_redis_keys()
            self._compact_redis()
        except Exception as exc:
            print(f"warning: could not delete this run's Redis keys: {exc}", file=sys.stderr)

    def drop_claims(self, group: str) -> None:
        """Delete the event-id claims of one phase's group once its workers stopped, and
        compact the AOF (cheap with the claims gone): a later phase should not pay for Redis
        holding millions of claims it never reads, nor for an automatic rewrite of them."""
        try:
            self._delete_redis_keys(f"decisionflow:claims:{group}:*")
            self._compact_redis()
        except Exception as exc:  # the run goes on; the end of the run tries again
            print(f"warning: could not delete the claims of {group}: {exc}", file=sys.stderr)

    def _compact_redis(self) -> None:
        """Rewrite Redis's append-only file once this run's keys are gone: it still held every
        claim the run wrote (2 GB after a soak; a restart then spent 31 s loading it)."""
        import redis

        r = redis.Redis.from_url(self.redis_url)
        try:
            r.bgrewriteaof()
        except redis.ResponseError as exc:  # one already running: it compacts as well
            print(f"note: Redis AOF rewrite not started: {exc}", file=sys.stderr)
        finally:
            r.close()

    def _delete_redis_keys(self, match: str | None = None) -> None:
        """The keys matching ``match``; by default this run's Celery queues and the workers'
        event-id claims (scoped by this run's group names): every key naming
        ``bench-<run id>``, in one pass over the keyspace."""
        import redis

        r = redis.Redis.from_url(self.redis_url)
        try:
            chunk: list[bytes] = []
            for key in r.scan_iter(match=match or f"*{self.name('')}*", count=10_000):
                chunk.append(key)
                if len(chunk) >= 10_000:
                    r.unlink(*chunk)
                    chunk = []
            if chunk:
                r.unlink(*chunk)
        finally:
            r.close()
