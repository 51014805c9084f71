"""Talking to the stack's running Kafka over PLAINTEXT: the health check, which brokers the
cluster counts as live, the pipeline's topics, the internal topics and partition leaders."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

from .common import log, port_open, wait_for
from .kafka_layout import Broker, replication

HEALTH_TOPIC = "__decisionflow_health"


@contextlib.contextmanager
def admin_client(brokers: list[Broker], timeout_ms: int = 5000) -> Iterator[Any]:
    """A kafka-python admin client bootstrapped from every broker (closed afterwards)."""
    from kafka.admin import KafkaAdminClient

    servers = [b.address for b in brokers]
    admin = KafkaAdminClient(bootstrap_servers=servers, request_timeout_ms=timeout_ms)
    try:
        yield admin
    finally:
        admin.close()


def _topic_args(count: int) -> tuple[int, dict[str, str]]:
    """Replication factor and topic configs of new topics: a cluster pins min.insync.replicas
    on each topic too (the broker default is the same), one broker keeps the plain topics."""
    rf, min_isr = replication(count)
    return rf, ({} if count == 1 else {"min.insync.replicas": str(min_isr)})


def kafka_healthy(brokers: list[Broker], quiet: bool = False) -> bool:
    """Every broker registered (unfenced) and a produce (acks=all) -> consume round trip.
    ``quiet``: an error (no broker reachable yet) counts as unhealthy instead of raising."""
    try:
        return _round_trip(brokers)
    except Exception:
        if quiet:
            return False
        raise


def _round_trip(brokers: list[Broker]) -> bool:
    if not all(port_open(b.port) for b in brokers):
        return False
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    with admin_client(brokers) as admin:
        live = [b for b in admin.describe_cluster()["brokers"] if not b.get("is_fenced")]
        if len(live) < len(brokers):
            return False
        if HEALTH_TOPIC not in admin.list_topics():
            rf, configs = _topic_args(len(brokers))
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([NewTopic(HEALTH_TOPIC, 1, rf, topic_configs=configs)])
    servers = [b.address for b in brokers]
    token = uuid.uuid4().hex.encode()
    producer = KafkaProducer(
        bootstrap_servers=servers, acks="all", request_timeout_ms=5000, max_block_ms=5000
    )
    try:
        meta = producer.send(HEALTH_TOPIC, token).get(timeout=10)
    finally:
        producer.close()
    consumer = KafkaConsumer(
        bootstrap_servers=servers, enable_auto_commit=False, consumer_timeout_ms=5000
    )
    try:
        tp = TopicPartition(HEALTH_TOPIC, meta.partition)
        consumer.assign([tp])
        consumer.seek(tp, meta.offset)
        return any(msg.value == token for msg in consumer)
    finally:
        consumer.close()


def live_brokers(brokers: list[Broker]) -> set[int]:
    """Node ids of the brokers the cluster counts as registered and unfenced, as reported by
    the first reachable broker that answers (each asked on its own, so one that just died
    and is still in the metadata cannot stall the question); empty when none answers."""
    from confluent_kafka.admin import AdminClient

    for b in brokers:
        if not port_open(b.port):
            continue
        admin = AdminClient({"bootstrap.servers": b.address, "log_level": 0})
        try:
            described = admin.describe_cluster(request_timeout=5).result(timeout=8)
        except Exception:
            continue
        return {node.id for node in described.nodes}
    return set()


def create_topics(brokers: list[Broker], topics: dict[str, int]) -> None:
    """The pipeline's topics (name -> partitions), created when missing."""
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    rf, configs = _topic_args(len(brokers))
    with admin_client(brokers, timeout_ms=30_000) as admin:
        existing = set(admin.list_topics())
        new = [
            NewTopic(t, n, rf, topic_configs=configs)
            for t, n in topics.items()
            if t not in existing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(new)
            log("topics: " + ", ".join(f"{t.name}({t.num_partitions})" for t in new))
            if configs:
                min_isr = configs["min.insync.replicas"]
                log(f"topics: replication factor {rf}, min.insync.replicas {min_isr}")


INTERNAL_TOPICS = ("__transaction_state", "__consumer_offsets")
WARMUP_ID = "__decisionflow_warmup"


def create_internal_topics(brokers: list[Broker]) -> None:
    """The transaction state and consumer offsets topics, made now while every broker is up.
    Kafka creates them on first use, replicated 3x: with a broker down that fails, and chaos
    drills kill one before anything has used them. A transactional producer's init and a
    group coordinator lookup create them."""
    from kafka import KafkaProducer

    with admin_client(brokers, timeout_ms=30_000) as admin:
        if set(INTERNAL_TOPICS) <= set(admin.list_topics()):
            return
        servers = [b.address for b in brokers]
        producer = KafkaProducer(bootstrap_servers=servers, transactional_id=WARMUP_ID)
        try:
            producer.init_transactions()
        finally:
            producer.close()
        wait_for("the consumer offsets topic", lambda: _has_group_coordinator(admin), 60)
    log("internal topics: " + ", ".join(INTERNAL_TOPICS))


def _has_group_coordinator(admin: Any) -> bool:
    admin.list_group_offsets(WARMUP_ID)  # raises until __consumer_offsets is ready
    return True


def partition_leader(topic: str, partition: int, brokers: list[Broker]) -> int | None:
    """The node id (= broker number) leading ``topic``/``partition`` as the live brokers'
    metadata says, None when it has no leader. Right after a broker dies the metadata may
    still name it until the controller fences it (broker.session.timeout.ms, 9 s)."""
    live = [b for b in brokers if port_open(b.port)]
    if not live:
        raise SystemExit("[stack] no broker is reachable")
    with admin_client(live) as admin:
        (described,) = admin.describe_topics([topic])
    if described["error_code"] == 3:  # UNKNOWN_TOPIC_OR_PARTITION
        raise SystemExit(f"[stack] no topic {topic}")
    if described["error_code"]:
        raise SystemExit(f"[stack] topic {topic}: error {described['error_code']}")
    for p in described["partitions"]:
        if p["partition_index"] == partition:
            leader: int = p["leader_id"]
            return leader if leader >= 0 else None
    raise SystemExit(f"[stack] topic {topic} has no partition {partition}")
