"""20,000 events through 2 real worker processes in one group: each event exactly once
across committed decisions + dead letters, also when a worker is SIGKILLed mid-stream and
when the champion is promoted and reloaded mid-stream. Every test runs on both Kafka client
backends (confluent-kafka and kafka-python)."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from models.data import holdout_split, load_frame
from models.registry import ModelRegistry
from models.spec import load_spec
from models.training import train_family
from tests.integration.streaming import CommittedReader, make_topics
from tests.integration.workerproc import (
    WorkerProcess,
    start_test_worker,
    stop_workers,
    wait_for,
    worker_env,
)
from workers.kafka_client import ClientName
from workers.malformed import malformed_corpus
from workers.producer import EventProducer, events_from_frame
from workers.settings import Topics

N_EVENTS = 20_000
MALFORMED_EVERY = 200


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    """A registry with a logreg champion (v1) and a second version (v2) ready to promote."""
    spec = load_spec("credit_data")
    train, _ = holdout_split(load_frame(spec), spec, 0.25, seed=1)
    reg = ModelRegistry(tmp_path_factory.mktemp("registry"))
    v1 = reg.register(train_family("logreg", train, spec, {"C": 1.0}, seed=1))
    reg.register(train_family("logreg", train, spec, {"C": 0.05}, seed=2))
    reg.promote(spec.name, v1, "champion", reason="test setup")
    return reg


def _produce(
    bootstrap: str, topics: Topics, start: int, count: int, rate: float | None = None
) -> int:
    """Send events start..start+count (credit rows, cycled) plus malformed ones, at about
    ``rate`` events/s when given; returns how many records were sent in all."""
    spec = load_spec("credit_data")
    df = load_frame(spec)
    rows = list(events_from_frame(df, spec.feature_names, spec.entity_key.column))
    corpus = malformed_corpus()
    sent = 0
    with EventProducer(bootstrap, topic=topics.events) as producer:
        began = time.monotonic()
        for i in range(start, start + count):
            if rate is not None and i % 500 == 0:
                producer.flush()
                time.sleep(max(began + (i - start) / rate - time.monotonic(), 0.0))
            entity_id, features = rows[i % len(rows)]
            producer.send(entity_id, features, event_id=f"e{i}")
            sent += 1
            if i % MALFORMED_EVERY == 0:
                producer.send_raw(entity_id, corpus[(i // MALFORMED_EVERY) % len(corpus)][1])
                sent += 1
    return sent


@pytest.fixture
def stream(
    bootstrap: str,
    make_topic: Callable[..., str],
    group_id: str,
    registry: ModelRegistry,
    tmp_path: Path,
    kafka_client: ClientName,
) -> Iterator[dict[str, object]]:
    topics = make_topics(make_topic, partitions=6)
    env = worker_env(topics, group_id, Path(registry.root), DECISIONFLOW_KAFKA_CLIENT=kafka_client)
    reader = CommittedReader(bootstrap, topics.decisions, topics.dlq)
    workers: list[WorkerProcess] = []

    def start(name: str) -> WorkerProcess:
        w = start_test_worker(f"{name}-{group_id[-6:]}", env, tmp_path)
        workers.append(w)
        return w

    yield {
        "topics": topics,
        "reader": reader,
        "start": start,
        "workers": workers,
        "group_id": group_id,
    }
    stop_workers(workers)
    reader.close()


def _total(reader: CommittedReader, topics: Topics, workers: list[WorkerProcess]) -> int:
    for w in workers:
        if w.proc.poll() is not None and w.proc.returncode != -9:
            raise AssertionError(f"worker {w.name} died:\n{w.log_text()[-4000:]}")
    reader.poll()
    return reader.count(topics.decisions) + reader.count(topics.dlq)


def _assert_exactly_once(reader: CommittedReader, topics: Topics, n_events: int) -> None:
    reader.poll(2000)
    decided = Counter(d["event_id"] for d in reader.records[topics.decisions])
    dupes = {k: v for k, v in decided.items() if v > 1}
    assert not dupes, f"{len(dupes)} events decided more than once, e.g. {list(dupes)[:3]}"
    assert set(decided) == {f"e{i}" for i in range(n_events)}, "an event was lost"
    dlq = reader.records[topics.dlq]
    assert len(dlq) == len({(d["source_partition"], d["source_offset"]) for d in dlq})
    assert len(dlq) == len(range(0, n_events, MALFORMED_EVERY))
    assert all(d["reason"] and d["error_message"] for d in dlq)


def _owns_partitions(worker: WorkerProcess) -> bool:
    """The worker has logged an assignment of at least one partition."""
    return re.search(r"partitions assigned: \[\d", worker.log_text()) is not None


def _logs(stream: dict[str, object]) -> str:
    return "\n".join(w.log_text()[-3000:] for w in stream["workers"])  # type: ignore[attr-defined]


def _group_state(bootstrap: str, group_id: str, topic: str) -> str:
    """Committed offsets against log ends, for failure messages."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    committed = admin.list_group_offsets({group_id: None}).get(group_id, {})
    admin.close()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
    ends = consumer.end_offsets(parts)
    consumer.close()
    return ", ".join(
        f"p{tp.partition}: {committed.get(tp, (None,))[0]}/{ends[tp]}" for tp in sorted(parts)
    )


def _wait_all(bootstrap: str, stream: dict[str, object], sent: int) -> None:
    """Wait until every record sent is accounted for; explain the state if not."""
    topics: Topics = stream["topics"]  # type: ignore[assignment]
    reader: CommittedReader = stream["reader"]  # type: ignore[assignment]
    workers: list[WorkerProcess] = stream["workers"]  # type: ignore[assignment]
    try:
        # poll=0: each check's reader.poll() already waits up to 0.5 s for new records
        wait_for(lambda: _total(reader, topics, workers) >= sent, 180, "all events", poll=0)
    except AssertionError:
        state = _group_state(bootstrap, stream["group_id"], topics.events)  # type: ignore[arg-type]
        raise AssertionError(
            f"{_total(reader, topics, [])}/{sent} accounted; group offsets {state}\n{_logs(stream)}"
        ) from None


def test_two_workers_plain(bootstrap: str, stream: dict[str, object]) -> None:
    topics: Topics = stream["topics"]  # type: ignore[assignment]
    reader: CommittedReader = stream["reader"]  # type: ignore[assignment]
    start = stream["start"]
    sent = _produce(bootstrap, topics, 0, N_EVENTS)
    start("w1")  # type: ignore[operator]
    start("w2")  # type: ignore[operator]
    _wait_all(bootstrap, stream, sent)
    _assert_exactly_once(reader, topics, N_EVENTS)
    workers_seen = {d["model_version"] for d in reader.records[topics.decisions]}
    assert workers_seen == {1}


def test_sigkill_one_worker_mid_stream(bootstrap: str, stream: dict[str, object]) -> None:
    topics: Topics = stream["topics"]  # type: ignore[assignment]
    reader: CommittedReader = stream["reader"]  # type: ignore[assignment]
    start = stream["start"]
    # events keep arriving while the worker dies: the kill lands mid-stream however fast the
    # workers are (they decide a backlog of 20,000 in a few seconds)
    sent_total = N_EVENTS + len(range(0, N_EVENTS, MALFORMED_EVERY))
    producer = threading.Thread(
        target=_produce, args=(bootstrap, topics, 0, N_EVENTS, 2000.0), daemon=True
    )
    w1 = start("w1")  # type: ignore[operator]
    start("w2")  # type: ignore[operator]
    producer.start()
    wait_for(
        lambda: _total(reader, topics, stream["workers"]) >= sent_total // 4,
        180,
        "a quarter decided",
        poll=0.2,
    )
    # kill once the group has settled: a static member killed between the two rounds of a
    # cooperative rebalance leaves the partitions it was giving up unowned until the next
    # rebalance (a known limitation, docs/reliability.md), which is not what this tests
    workers: list[WorkerProcess] = stream["workers"]  # type: ignore[assignment]
    wait_for(lambda: all(map(_owns_partitions, workers)), 60, "both workers own partitions", 0.2)
    w1.kill()
    assert _total(reader, topics, stream["workers"]) < sent_total, "too late to kill mid-stream"
    start(w1.name.rsplit("-", 1)[0])  # restarted under the same name: fences the dead one
    producer.join(60)
    _wait_all(bootstrap, stream, sent_total)
    _assert_exactly_once(reader, topics, N_EVENTS)


def test_promotion_and_reload_mid_stream(
    bootstrap: str, stream: dict[str, object], registry: ModelRegistry
) -> None:
    topics: Topics = stream["topics"]  # type: ignore[assignment]
    reader: CommittedReader = stream["reader"]  # type: ignore[assignment]
    start = stream["start"]
    name = load_spec("credit_data").name
    registry.promote(name, 1, "champion", reason="reset for test")
    half = N_EVENTS // 2
    sent = _produce(bootstrap, topics, 0, half)
    start("w1")  # type: ignore[operator]
    start("w2")  # type: ignore[operator]
    wait_for(
        lambda: _total(reader, topics, stream["workers"]) >= sent,
        240,
        "first half decided",
        poll=0.5,
    )
    registry.promote(name, 2, "champion", reason=f"mid-stream test {uuid.uuid4().hex[:6]}")
    from workers.celery_app import app

    app.control.broadcast("reload_model", reply=False)
    sent += _produce(bootstrap, topics, half, N_EVENTS - half)
    _wait_all(bootstrap, stream, sent)
    _assert_exactly_once(reader, topics, N_EVENTS)
    decisions = reader.records[topics.decisions]
    by_version = Counter(d["model_version"] for d in decisions)
    assert set(by_version) == {1, 2}, by_version
    # per partition, versions never go back once v2 took over
    for p in {d["_partition"] for d in decisions}:
        seq = [
            d["model_version"]
            for d in sorted(decisions, key=lambda d: d["_offset"])
            if d["_partition"] == p
        ]
        assert seq == sorted(seq), f"partition {p} flipped back to v1"
    late = [d for d in decisions if int(d["event_id"][1:]) >= half + 2000]
    assert all(d["model_version"] == 2 for d in late)
    json.dumps(by_version)
