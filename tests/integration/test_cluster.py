"""`infra/stack up --brokers 3` on a private run dir and free ports: a 3-node KRaft quorum,
topics and internal topics replicated 3x with min.insync.replicas 2, the SASL listener on every
node, and a transactional produce + read_committed consume that still works after the leader of
a partition is SIGKILLed; then `start-broker` heals it and `down` leaves nothing.

Slow (three JVMs; 65-100 s here): marked ``cluster``. Select it with ``-m cluster``,
leave it out with ``-m "not cluster"``.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]

from tests.integration.test_stack_lifecycle import _alive, _free_ports
from tests.integration.test_stack_sasl import auth_errors, sasl_settings

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
BROKERS = 3
STEP = 10  # DECISIONFLOW_KAFKA_PORT_STEP: broker i listens on base + (i - 1) * STEP
TOPICS = ("events", "decisions", "decisions.shadow", "events.dlq", "outcomes")


@dataclass
class Cluster:
    env: dict[str, str]
    run: Path
    bootstrap: str
    outputs: list[str]  # every command's output, to check no secret is printed

    def stack(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        t0 = time.monotonic()
        out = subprocess.run(
            [sys.executable, str(REPO / "infra" / "stack.py"), *args],
            env=self.env,
            text=True,
            capture_output=True,
            timeout=400,
        )
        print(f"infra/stack {' '.join(args)}: {time.monotonic() - t0:.1f}s")
        self.outputs.append(out.stdout + out.stderr)
        if check:
            assert out.returncode == 0, out.stdout + out.stderr
        return out

    def status(self) -> tuple[int, dict[str, str]]:
        out = self.stack("status", check=False)
        return out.returncode, {ln.split()[0]: ln.split()[1] for ln in out.stdout.splitlines()}


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _cluster_base_port() -> int:
    """A base port below the ephemeral range whose 9 broker ports (PLAINTEXT base, controller
    base+1, SASL base+3, each + 0/10/20) are all free."""
    for _ in range(200):
        base = random.randrange(20_000, 32_000, 50)
        ports = [base + off + i * STEP for off in (0, 1, 3) for i in range(BROKERS)]
        if all(_port_free(p) for p in ports):
            return base
    raise RuntimeError("no free ports for a 3-broker cluster")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    # not under pytest's tmp root: a concurrent pytest session resets that to 0700, which
    # locks the stack's PostgreSQL (run as the postgres user) out of its data dir
    top = Path(tempfile.mkdtemp(prefix="decisionflow-cluster-"))
    run = top / "run"
    base = _cluster_base_port()
    redis_port, pg = _free_ports(2)
    env = {
        **os.environ,
        "DECISIONFLOW_RUN_DIR": str(run),
        "DECISIONFLOW_CACHE_DIR": str(REPO / "var" / "cache"),
        "DECISIONFLOW_KAFKA_PORT": str(base),
        "DECISIONFLOW_KAFKA_CONTROLLER_PORT": str(base + 1),
        "DECISIONFLOW_KAFKA_SASL_PORT": str(base + 3),
        "DECISIONFLOW_KAFKA_PORT_STEP": str(STEP),
        "DECISIONFLOW_REDIS_PORT": str(redis_port),
        "DECISIONFLOW_POSTGRES_PORT": str(pg),
        "DECISIONFLOW_TOPIC_PARTITIONS": "3",
    }
    bootstrap = ",".join(f"127.0.0.1:{base + i * STEP}" for i in range(BROKERS))
    c = Cluster(env, run, bootstrap, [])
    t0 = time.monotonic()
    try:
        c.stack("up", "--brokers", str(BROKERS))
        yield c
    finally:
        pids = [int(p.read_text()) for p in run.glob("kafka-*/kafka-*.pid")]
        down = c.stack("down", check=False)
        print(f"cluster lifetime {time.monotonic() - t0:.1f}s")
    assert down.returncode == 0, down.stdout + down.stderr
    assert not any(_alive(p) for p in pids), "a broker survived `down`"
    shutil.rmtree(top, ignore_errors=True)


def _admin(c: Cluster) -> AdminClient:
    return AdminClient({"bootstrap.servers": c.bootstrap, "log_level": 0})


def test_status_env_and_remembered_count(cluster: Cluster) -> None:
    rc, states = cluster.status()
    assert rc == 0
    names = ["kafka-1", "kafka-2", "kafka-3", "redis", "postgres"]
    assert states == dict.fromkeys(names, "up")
    env = cluster.stack("env").stdout
    assert f"DECISIONFLOW_KAFKA_BOOTSTRAP_SERVERS={cluster.bootstrap}\n" in env
    assert (cluster.run / "stack.env").read_text().startswith(env.splitlines()[0])
    again = cluster.stack("up")  # no flag: the remembered 3 brokers, all healthy
    assert f"kafka already up on {cluster.bootstrap}" in again.stdout


def test_topics_replicated_three_times_min_isr_two(cluster: Cluster) -> None:
    admin = _admin(cluster)
    meta = admin.list_topics(timeout=30)
    for topic in (*TOPICS, "__transaction_state", "__consumer_offsets"):
        parts = meta.topics[topic].partitions.values()
        assert parts, topic
        assert {len(p.replicas) for p in parts} == {3}, topic
        assert {len(p.isrs) for p in parts} == {3}, topic
    resources = [ConfigResource("topic", t) for t in TOPICS]
    resources.append(ConfigResource("broker", "1"))
    configs = {r.name: f.result(timeout=30) for r, f in admin.describe_configs(resources).items()}
    for topic in TOPICS:
        assert configs[topic]["min.insync.replicas"].value == "2", topic
    expected = {
        "default.replication.factor": "3",
        "min.insync.replicas": "2",
        "offsets.topic.replication.factor": "3",
        "transaction.state.log.replication.factor": "3",
        "transaction.state.log.min.isr": "2",
    }
    assert {k: configs["1"][k].value for k in expected} == expected


def test_quorum_has_three_voters(cluster: Cluster) -> None:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap.split(","))
    try:
        quorum = admin.describe_metadata_quorum()
    finally:
        admin.close()
    (partition,) = quorum["topics"][0]["partitions"]
    assert sorted(v["replica_id"] for v in partition["current_voters"]) == [1, 2, 3]


def test_sasl_listener_on_every_broker(cluster: Cluster) -> None:
    sasl = sasl_settings(cluster.run)
    assert len(sasl.bootstrap_servers.split(",")) == BROKERS
    for server in sasl.bootstrap_servers.split(","):
        conf = {**sasl.confluent_options(), "bootstrap.servers": server, "log_level": 0}
        brokers = AdminClient(conf).list_topics(timeout=30).brokers
        assert len(brokers) == BROKERS, server
    wrong = {**sasl.confluent_options(), "sasl.password": "not-the-password"}
    assert any(e.code() == KafkaError._AUTHENTICATION for e in auth_errors(wrong))


def _leader(c: Cluster, topic: str, partition: int) -> int:
    return int(c.stack("leader", topic, str(partition)).stdout.strip())


def _read_committed(c: Cluster, topic: str, want: int, timeout: float = 60) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": c.bootstrap,
            "group.id": f"cluster-{uuid.uuid4().hex[:8]}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "log_level": 0,
        }
    )
    got: list[bytes] = []
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(3)])  # OFFSET_BEGINNING
        deadline = time.monotonic() + timeout
        while len(got) < want and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            payload = msg.value() if msg is not None and msg.error() is None else None
            if payload is not None:
                got.append(payload)
        time.sleep(1)  # anything beyond what is expected (an aborted record) would show now
        while (msg := consumer.poll(0.5)) is not None:
            if msg.error() is None and (payload := msg.value()) is not None:
                got.append(payload)
    finally:
        consumer.close()
    return got


def test_transactions_survive_the_leader_being_killed(cluster: Cluster) -> None:
    topic = "events"
    victim = _leader(cluster, topic, 0)
    t0 = time.monotonic()
    cluster.stack("kill-broker", str(victim))
    rc, states = cluster.status()
    survivors = {f"kafka-{n}" for n in range(1, BROKERS + 1)} - {f"kafka-{victim}"}
    assert rc == 3 and states[f"kafka-{victim}"] == "down", states
    assert {states[s] for s in survivors} == {"up"}, states

    producer = Producer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "transactional.id": f"cluster-{uuid.uuid4().hex[:8]}",
            "acks": "all",
            "log_level": 0,
        }
    )
    producer.init_transactions(90)
    producer.begin_transaction()
    committed = [f"c-{i}".encode() for i in range(30)]
    for i, value in enumerate(committed):
        producer.produce(topic, value, partition=i % 3)  # partition 0 lost its leader
    producer.commit_transaction(90)
    producer.begin_transaction()
    producer.produce(topic, b"aborted", partition=0)
    producer.flush(60)
    producer.abort_transaction(60)
    print(f"transactions with broker {victim} dead: {time.monotonic() - t0:.1f}s after the kill")

    got = _read_committed(cluster, topic, len(committed))
    assert sorted(got) == sorted(committed)  # all committed, once; the aborted one hidden
    new_leader = _leader(cluster, topic, 0)
    assert new_leader != victim

    cluster.stack("start-broker", str(victim))
    rc, states = cluster.status()
    assert rc == 0, states


def test_no_command_printed_the_password(cluster: Cluster) -> None:
    sasl = sasl_settings(cluster.run)
    assert sasl.sasl_password is not None
    secret = sasl.sasl_password.get_secret_value()
    assert cluster.outputs and not any(secret in out for out in cluster.outputs)
