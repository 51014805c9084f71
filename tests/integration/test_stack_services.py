"""The real services behind the stack: Kafka (incl. transactions), Redis, PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import redis
import sqlalchemy as sa
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient

from workers.settings import WorkerSettings


def _read_all(bootstrap: str, topic: str, isolation: str, group: str) -> list[bytes]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level=isolation,
        consumer_timeout_ms=3000,
    )
    try:
        return [m.value for m in consumer]
    finally:
        consumer.close()


def test_broker_is_apache_kafka_4_from_maven_jars(bootstrap: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        cluster = admin.describe_cluster()
        topics = set(admin.list_topics())
    finally:
        admin.close()
    print(f"broker cluster {cluster['cluster_id']} at {bootstrap}")
    assert {"events", "decisions", "decisions.shadow", "events.dlq", "outcomes"} <= topics
    jars = list((__import__("pathlib").Path("var/cache")).glob("kafka-*/kafka_2.13-4.*.jar"))
    assert jars, "the broker must run from the Maven-resolved Apache Kafka 4.x jars"
    print(f"Apache Kafka jar: {jars[0].name}")


def test_produce_consume_round_trip(
    bootstrap: str, make_topic: Callable[..., str], group_id: str
) -> None:
    topic = make_topic("roundtrip", partitions=3)
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    sent = [f"msg-{i}".encode() for i in range(100)]
    for i, value in enumerate(sent):
        producer.send(topic, key=str(i % 7).encode(), value=value)
    producer.flush()
    producer.close()
    assert sorted(_read_all(bootstrap, topic, "read_uncommitted", group_id)) == sorted(sent)


def test_read_committed_sees_only_committed_transactions(
    bootstrap: str, make_topic: Callable[..., str], group_id: str
) -> None:
    topic = make_topic("txn")
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=f"test-txn-{uuid.uuid4().hex[:8]}"
    )
    producer.init_transactions()
    producer.begin_transaction()
    producer.send(topic, b"committed-1")
    producer.send(topic, b"committed-2")
    producer.commit_transaction()
    producer.begin_transaction()
    producer.send(topic, b"aborted-1")
    producer.flush()  # the records reach the log, then the transaction is aborted
    producer.abort_transaction()
    producer.close()

    committed = _read_all(bootstrap, topic, "read_committed", group_id)
    everything = _read_all(bootstrap, topic, "read_uncommitted", group_id + "-raw")
    assert committed == [b"committed-1", b"committed-2"]
    assert b"aborted-1" in everything  # the aborted record is in the log but hidden


def test_redis_answers(worker_settings: WorkerSettings) -> None:
    client = redis.Redis.from_url(worker_settings.redis_url)
    key = f"test:{uuid.uuid4().hex}"
    client.set(key, "v", ex=30)
    assert client.get(key) == b"v"
    assert "redis_version" in client.info()


def test_redis_keeps_claims_in_an_append_only_file_without_snapshots(
    worker_settings: WorkerSettings,
) -> None:
    """Claims survive a Redis crash (AOF, fsync every second); no RDB snapshots on top, and
    the AOF is not rewritten (a fork that writes every claim) before it reaches 1 GB."""
    client = redis.Redis.from_url(worker_settings.redis_url)
    config = client.config_get("*")
    assert config["appendonly"] == "yes" and config["appendfsync"] == "everysec"
    assert config["save"] == ""
    assert int(config["auto-aof-rewrite-min-size"]) == 1 << 30


def test_postgres_round_trip(database_url: str) -> None:
    assert database_url.startswith("postgresql"), database_url
    engine = sa.create_engine(database_url)
    table = f"t_{uuid.uuid4().hex[:10]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TEMP TABLE {table} (id int primary key, v text)"))
        conn.execute(sa.text(f"INSERT INTO {table} VALUES (1, 'a'), (2, 'b')"))
        rows = conn.execute(sa.text(f"SELECT v FROM {table} ORDER BY id")).scalars().all()
        version = conn.execute(sa.text("SHOW server_version")).scalar_one()
    engine.dispose()
    print(f"PostgreSQL {version}")
    assert rows == ["a", "b"]


def test_the_stack_creates_every_shipped_flows_topics(bootstrap: str) -> None:
    from decisioning.flow import available_flows, load_flow

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        existing = set(admin.list_topics())
    finally:
        admin.close()
    wanted = {t for name in available_flows() for t in load_flow(name).topics.values()}
    assert wanted and wanted <= existing, sorted(wanted - existing)
