"""A broker outage mid-stream: the loop backs off, resumes when Kafka is back, loses nothing
and decides nothing twice, on each Kafka client backend. Runs on a private stack (own run dir and
ports)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from kafka.admin import KafkaAdminClient, NewTopic

from decisioning.policy import load_policy
from tests.integration.streaming import CommittedReader
from tests.integration.test_stack_lifecycle import _free_ports
from workers.decide_loop import DecisionLoop
from workers.engine import DecisionEngine
from workers.kafka_client import ClientName
from workers.producer import EventProducer
from workers.settings import KafkaSettings, Topics, WorkerSettings
from workers.testing import FakeModel, valid_event

REPO = Path(__file__).resolve().parents[2]


def _stack(env: dict[str, str], *args: str) -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "infra" / "stack.py"), *args],
        env=env,
        text=True,
        capture_output=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_loop_survives_a_broker_outage(tmp_path: Path, kafka_client: ClientName) -> None:
    kafka, controller, redis_port, pg = _free_ports(4)
    run = tmp_path / "run"
    env = {
        **os.environ,
        "DECISIONFLOW_RUN_DIR": str(run),
        "DECISIONFLOW_CACHE_DIR": str(REPO / "var" / "cache"),
        "DECISIONFLOW_KAFKA_PORT": str(kafka),
        "DECISIONFLOW_KAFKA_CONTROLLER_PORT": str(controller),
        "DECISIONFLOW_REDIS_PORT": str(redis_port),
        "DECISIONFLOW_POSTGRES_PORT": str(pg),
        "DECISIONFLOW_TOPIC_PARTITIONS": "3",
    }
    bootstrap = f"127.0.0.1:{kafka}"
    _stack(env, "up")
    thread = None
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        admin.create_topics(
            [
                NewTopic("o.events", 3, 1),
                NewTopic("o.decisions", 3, 1),
                NewTopic("o.dlq", 1, 1),
                NewTopic("o.shadow", 1, 1),
            ]
        )
        admin.close()
        topics = Topics(
            events="o.events",
            decisions="o.decisions",
            dlq="o.dlq",
            shadow="o.shadow",
            outcomes="o.outcomes",
        )
        settings = WorkerSettings(
            _env_file=None,
            kafka=KafkaSettings(bootstrap_servers=bootstrap),
            topics=topics,
            group_id="outage",
            max_batch_size=100,
            kafka_client=kafka_client,
        )

        def produce(start: int, n: int) -> None:
            with EventProducer(bootstrap, topic=topics.events) as p:
                for i in range(start, start + n):
                    p.send_raw(f"app-{i}", json.dumps(valid_event(i)).encode())

        produce(0, 1000)
        model = FakeModel()
        engine = DecisionEngine(model, load_policy("credit_v1"), model.spec)  # type: ignore[arg-type]
        loop = DecisionLoop(settings, engine, worker_name="outage")
        thread = threading.Thread(target=loop.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while loop.committed_batches < 3:
            assert time.monotonic() < deadline, "no progress before the outage"
            time.sleep(0.1)

        kafka_pid = int((run / "kafka" / "kafka.pid").read_text())
        os.kill(kafka_pid, signal.SIGKILL)  # the broker dies mid-stream
        time.sleep(8)
        assert thread.is_alive(), "the loop must keep trying, not die"
        _stack(env, "up")  # the broker comes back (same data dir)
        produce(1000, 500)

        reader = CommittedReader(bootstrap, topics.decisions)  # reads as decisions commit
        try:
            deadline = time.monotonic() + 120
            decided: Counter[str] = Counter()
            while len(decided) < 1500 and time.monotonic() < deadline:
                reader.poll()
                decided = Counter(d["event_id"] for d in reader.records[topics.decisions])
            reader.drain()  # 3 s more, as read_committed reads: a late duplicate shows
            decided = Counter(d["event_id"] for d in reader.records[topics.decisions])
        finally:
            reader.close()
        assert set(decided) == {f"evt-{i}" for i in range(1500)}, f"{len(decided)} of 1500"
        assert max(decided.values()) == 1
    finally:
        if thread is not None:
            loop.stop()
            thread.join(30)
        _stack(env, "down")
