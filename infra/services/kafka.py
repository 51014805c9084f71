"""Apache Kafka in KRaft mode (one broker that is also its controller), run from the Maven jars
of infra/pom.xml: jars, configuration, storage format, start, health check, topics, version."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from pathlib import Path

from .common import HOST, PORTS, REPO, RUN, already_up, ensure_free, log, port_open, sh, wait_for

KAFKA_VERSION = "4.2.2"  # keep in step with infra/pom.xml
PARTITIONS = int(os.environ.get("DECISIONFLOW_TOPIC_PARTITIONS", "6"))
TOPICS = {
    "events": PARTITIONS,
    "decisions": PARTITIONS,
    "decisions.shadow": PARTITIONS,
    "events.dlq": 1,
    "outcomes": PARTITIONS,
}


def kafka_jars() -> Path:
    """Broker jars resolved by Maven from infra/pom.xml into the run cache (once)."""
    cache = Path(os.environ.get("DECISIONFLOW_CACHE_DIR", REPO / "var" / "cache"))
    jars = cache / f"kafka-{KAFKA_VERSION}"
    if not (jars / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
        if not shutil.which("mvn"):
            raise SystemExit("[stack] Maven (mvn) is needed once to fetch the Kafka broker jars")
        log(f"resolving Apache Kafka {KAFKA_VERSION} broker jars with Maven")
        tmp = jars.with_suffix(".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(
            [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(REPO / "infra" / "pom.xml"),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={tmp}",
                "-DincludeScope=runtime",
                f"-Dkafka.version={KAFKA_VERSION}",
            ],
            check=True,
        )
        shutil.rmtree(jars, ignore_errors=True)
        tmp.rename(jars)
    return jars


def write_config(d: Path) -> tuple[Path, Path]:
    """The broker's server.properties and log4j2.properties in ``d``; returns both paths."""
    props = d / "server.properties"
    props.write_text(
        "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.bootstrap.servers={HOST}:{PORTS['controller']}",
                f"listeners=PLAINTEXT://{HOST}:{PORTS['kafka']},CONTROLLER://{HOST}:{PORTS['controller']}",
                f"advertised.listeners=PLAINTEXT://{HOST}:{PORTS['kafka']},CONTROLLER://{HOST}:{PORTS['controller']}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                f"log.dirs={d / 'data'}",
                f"num.partitions={PARTITIONS}",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=12",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "transaction.state.log.num.partitions=12",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "min.insync.replicas=1",
                "default.replication.factor=1",
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=false",
                "log.retention.hours=168",
                "message.max.bytes=2097152",
                "",
            ]
        )
    )
    log4j = d / "log4j2.properties"
    log4j.write_text(
        "status = warn\n"
        "appender.file.type = File\nappender.file.name = file\n"
        f"appender.file.fileName = {d / 'kafka.log'}\n"
        "appender.file.layout.type = PatternLayout\n"
        "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
        "rootLogger.level = INFO\nrootLogger.appenderRef.file.ref = file\n"
        "logger.kafka.name = kafka\nlogger.kafka.level = WARN\n"
        "logger.apache.name = org.apache.kafka\nlogger.apache.level = WARN\n"
    )
    return props, log4j


def format_storage(jvm: list[str], d: Path, props: Path) -> None:
    """Format the KRaft log directory once, under a cluster id kept in ``d/cluster.id``."""
    if (d / "data" / "meta.properties").exists():
        return
    cluster_id = (d / "cluster.id").read_text().strip() if (d / "cluster.id").exists() else ""
    if not cluster_id:
        cluster_id = sh([*jvm, "kafka.tools.StorageTool", "random-uuid"]).stdout.strip().split()[-1]
        (d / "cluster.id").write_text(cluster_id)
    log(f"formatting KRaft storage (cluster {cluster_id})")
    sh(
        [
            *jvm,
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "-t",
            cluster_id,
            "-c",
            str(props),
            "--ignore-formatted",
        ]
    )


def kafka_up() -> None:
    d = RUN / "kafka"
    if already_up("kafka", kafka_healthy):
        return
    ensure_free("kafka", PORTS["kafka"])
    ensure_free("kafka_controller", PORTS["controller"])
    jars = kafka_jars()
    java = shutil.which("java")
    if not java:
        raise SystemExit("[stack] Java 17+ is needed to run the Kafka broker")
    d.mkdir(parents=True, exist_ok=True)
    props, log4j = write_config(d)
    jvm = [java, "-Xms256m", "-Xmx1g", f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{jars}/*"]
    format_storage(jvm, d, props)
    with open(d / "stdout.log", "ab") as out:
        proc = subprocess.Popen(
            [*jvm, "-XX:+UseG1GC", "kafka.Kafka", str(props)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    (d / "kafka.pid").write_text(str(proc.pid))
    log(f"kafka {KAFKA_VERSION} starting (pid {proc.pid}) on {HOST}:{PORTS['kafka']}")

    def alive_and_healthy() -> bool:
        if proc.poll() is not None:
            raise SystemExit(f"[stack] kafka exited with {proc.returncode}; see {d}/stdout.log")
        return kafka_healthy()

    wait_for("kafka", alive_and_healthy, 120)
    create_topics()


def kafka_healthy() -> bool:
    """A real produce -> consume round trip through the broker."""
    if not port_open(PORTS["kafka"]):
        return False
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    bootstrap = f"{HOST}:{PORTS['kafka']}"
    topic = "__decisionflow_health"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        if topic not in admin.list_topics():
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        admin.close()
    token = uuid.uuid4().hex.encode()
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, request_timeout_ms=5000, max_block_ms=5000
    )
    try:
        meta = producer.send(topic, token).get(timeout=10)
    finally:
        producer.close()
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=5000
    )
    try:
        tp = TopicPartition(topic, meta.partition)
        consumer.assign([tp])
        consumer.seek(tp, meta.offset)
        return any(msg.value == token for msg in consumer)
    finally:
        consumer.close()


def create_topics() -> None:
    """The pipeline's topics (TOPICS: name -> partitions), created when missing."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=f"{HOST}:{PORTS['kafka']}")
    try:
        existing = set(admin.list_topics())
        new = [NewTopic(t, n, 1) for t, n in TOPICS.items() if t not in existing]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(new)
            log("topics: " + ", ".join(f"{t.name}({t.num_partitions})" for t in new))
    finally:
        admin.close()


def kafka_version_line() -> str:
    jars = RUN.parent / "cache" / f"kafka-{KAFKA_VERSION}"
    return f"Apache Kafka {KAFKA_VERSION} (KRaft, jars {jars})"
