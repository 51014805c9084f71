"""Apache Kafka in KRaft mode, run from the Maven jars of infra/pom.xml: one broker that is also
its controller (the default), or a cluster of N such nodes with a controller quorum of N
(``up --brokers N``, layout in ``kafka_layout``): jars, configuration, storage format, start,
health check, topics, one broker's kill and start, partition leaders, version."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from . import kafka_scram as scram
from .common import HOST, REPO, RUN, alive, ensure_free, log, pid_of, sh, wait_for
from .kafka_admin import create_internal_topics, create_topics, kafka_healthy
from .kafka_layout import Broker, bootstrap, cluster, kafka_uuid, replication, sasl_bootstrap

KAFKA_VERSION = "4.2.2"  # keep in step with infra/pom.xml
PARTITIONS = int(os.environ.get("DECISIONFLOW_TOPIC_PARTITIONS", "6"))
TOPICS = {
    "events": PARTITIONS,
    "decisions": PARTITIONS,
    "decisions.shadow": PARTITIONS,
    "events.dlq": 1,
    "outcomes": PARTITIONS,
    "decisions.duplicates": PARTITIONS,
}


def flow_topics() -> dict[str, int]:
    """The topics of the shipped decision flows (decisioning/flows/*.yaml), beside
    :data:`TOPICS`: dead-letter topics get one partition, the others the default count."""
    import yaml

    out: dict[str, int] = {}
    for path in sorted((REPO / "decisioning" / "flows").glob("*.yaml")):
        topics = (yaml.safe_load(path.read_text()) or {}).get("topics") or {}
        for role, name in topics.items():
            out[str(name)] = 1 if role == "dlq" else PARTITIONS
    return out


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


# --------------------------------------------------------------------------- configuration


def write_config(b: Broker, brokers: list[Broker]) -> tuple[Path, Path]:
    """Broker ``b``'s server.properties and log4j2.properties in its folder; returns both."""
    d = b.dir
    rf, min_isr = replication(b.count)
    quorum = ",".join(f"{HOST}:{x.controller_port}" for x in brokers)
    listeners = (
        f"PLAINTEXT://{b.address},CONTROLLER://{HOST}:{b.controller_port},"
        f"SASL_PLAINTEXT://{b.sasl_address}"
    )
    props = d / "server.properties"
    props.write_text(
        "\n".join(
            [
                "process.roles=broker,controller",
                f"node.id={b.node}",
                f"controller.quorum.bootstrap.servers={quorum}",
                f"listeners={listeners}",
                f"advertised.listeners={listeners}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map="
                "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
                # SCRAM on the SASL listener only; users live in the KRaft metadata log
                f"sasl.enabled.mechanisms={scram.MECHANISM}",
                f"listener.name.sasl_plaintext.{scram.MECHANISM.lower()}.sasl.jaas.config="
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
                f"log.dirs={d / 'data'}",
                f"num.partitions={PARTITIONS}",
                f"offsets.topic.replication.factor={rf}",
                "offsets.topic.num.partitions=12",
                f"transaction.state.log.replication.factor={rf}",
                f"transaction.state.log.min.isr={min_isr}",
                "transaction.state.log.num.partitions=12",
                f"share.coordinator.state.topic.replication.factor={rf}",
                f"share.coordinator.state.topic.min.isr={min_isr}",
                f"min.insync.replicas={min_isr}",
                f"default.replication.factor={rf}",
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=false",
                "log.retention.hours=168",
                "message.max.bytes=2097152",
                # recovery in seconds (docs/reliability.md): a dead producer's transaction is
                # aborted within a second of its timeout (default: checked every 10 s) ...
                "transaction.abort.timed.out.transaction.cleanup.interval.ms=1000",
                # ... and a dead broker is fenced, its partitions led by others, in 3 s (9 s)
                "broker.heartbeat.interval.ms=500",
                "broker.session.timeout.ms=3000",
                *cluster_only(b),
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


def cluster_only(b: Broker) -> list[str]:
    """Settings of cluster nodes only. `down` stops every node at once: a controlled shutdown
    would wait (5 minutes) for a controller quorum that is leaving too, so nodes skip it.
    Chaos drills SIGKILL brokers anyway."""
    return [] if b.count == 1 else ["controlled.shutdown.enable=false"]


def jvm_command(b: Broker, log4j: Path) -> list[str]:
    """``java`` with heap, logging and class path for broker ``b`` (main class not included).
    A lone broker gets 1 GiB; cluster nodes 512 MiB each, so three fit a small machine."""
    java = shutil.which("java")
    if not java:
        raise SystemExit("[stack] Java 17+ is needed to run the Kafka broker")
    heap = ["-Xms256m", "-Xmx1g"] if b.count == 1 else ["-Xms256m", "-Xmx512m"]
    jars = kafka_jars()
    return [java, *heap, f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{jars}/*"]


def _shared_id(brokers: list[Broker], file: str) -> str:
    """The id kept in ``file`` of any broker folder (made once), copied into all of them."""
    found = [b.dir / file for b in brokers if (b.dir / file).exists()]
    value = found[0].read_text().strip() if found else ""
    value = value or kafka_uuid()
    for b in brokers:
        b.dir.mkdir(parents=True, exist_ok=True)
        if not (b.dir / file).exists():
            (b.dir / file).write_text(value)
    return value


def _directory_id(b: Broker) -> str:
    """The id of ``b``'s metadata log directory, fixed before formatting (--initial-controllers)."""
    f = b.dir / "directory.id"
    if not f.exists():
        b.dir.mkdir(parents=True, exist_ok=True)
        f.write_text(kafka_uuid())
    return f.read_text().strip()


def quorum_args(b: Broker, brokers: list[Broker]) -> list[str]:
    """A lone controller is a standalone dynamic quorum; N nodes share one voter set,
    ``id@host:port:directory-id`` each, the same string for every node."""
    if b.count == 1:
        return ["--standalone"]
    voters = ",".join(f"{x.node}@{HOST}:{x.controller_port}:{_directory_id(x)}" for x in brokers)
    return ["--initial-controllers", voters]


def format_storage(jvm: list[str], b: Broker, brokers: list[Broker], props: Path) -> bool:
    """Format ``b``'s KRaft log directory once (with the SCRAM user); True when it did now."""
    if (b.dir / "data" / "meta.properties").exists():
        return False
    cluster_id = _shared_id(brokers, "cluster.id")
    log(f"formatting KRaft storage of {b.name} (cluster {cluster_id})")
    pw = scram.password()
    cmd = [*jvm, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props)]
    cmd += [*quorum_args(b, brokers), *scram.format_arg(pw), "--ignore-formatted"]
    try:
        sh(cmd)
    except subprocess.CalledProcessError as e:  # its command line holds the password
        out = scram.redact(f"{e.stdout}\n{e.stderr}".strip(), pw)
        raise SystemExit(f"[stack] formatting {b.name} failed:\n{out}") from None
    return True


# --------------------------------------------------------------------------- start, stop


def start_broker(b: Broker, brokers: list[Broker]) -> tuple[subprocess.Popen[bytes], bool]:
    """Configure, format when new, and launch broker ``b`` (not waiting for it); returns the
    process and whether its storage was formatted now."""
    ensure_free("kafka", b.port)
    ensure_free("kafka_controller", b.controller_port)
    ensure_free("kafka_sasl", b.sasl_port)
    b.dir.mkdir(parents=True, exist_ok=True)
    props, log4j = write_config(b, brokers)
    jvm = jvm_command(b, log4j)
    formatted = format_storage(jvm, b, brokers, props)
    with open(b.dir / "stdout.log", "ab") as out:
        proc = subprocess.Popen(
            [*jvm, "-XX:+UseG1GC", "kafka.Kafka", str(props)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    (b.dir / f"{b.name}.pid").write_text(str(proc.pid))
    log(f"{b.name} {KAFKA_VERSION} starting (pid {proc.pid}) on {b.address}")
    return proc, formatted


def wait_healthy(
    brokers: list[Broker], procs: list[tuple[Broker, subprocess.Popen[bytes]]]
) -> None:
    """Wait for the cluster's health; a broker started here that exits ends the wait."""

    def alive_and_healthy() -> bool:
        for b, proc in procs:
            if proc.poll() is not None:
                raise SystemExit(
                    f"[stack] {b.name} exited with {proc.returncode}; see {b.dir}/stdout.log"
                )
        return kafka_healthy(brokers)

    wait_for("kafka", alive_and_healthy, 120 if len(brokers) == 1 else 180)


def kafka_up(count: int | None = None) -> None:
    """Start the brokers that are not running (all, on a fresh run dir), wait for a healthy
    cluster, create the topics, and make sure the SCRAM user can log in."""
    brokers = cluster(count)
    down = [b for b in brokers if not pid_of(b.name)]
    if not down and kafka_healthy(brokers, quiet=True):
        log(f"kafka already up on {bootstrap(brokers)}")
        create_topics(brokers, {**TOPICS, **flow_topics()})  # topics a newer version added
        return
    kafka_jars()
    started = [(b, *start_broker(b, brokers)) for b in down]
    wait_healthy(brokers, [(b, proc) for b, proc, _ in started])
    create_topics(brokers, {**TOPICS, **flow_topics()})
    if len(brokers) > 1:
        create_internal_topics(brokers)
    pw = scram.password()
    if not (len(started) == len(brokers) and all(fresh for _, _, fresh in started)):
        scram.upsert(brokers, pw)  # a cluster formatted before: --add-scram never ran on it
    scram.write_env(brokers, pw)
    wait_for("kafka SASL/SCRAM listener", lambda: scram.login_ok(brokers, pw), 60)
    log(f"SASL/SCRAM on {sasl_bootstrap(brokers)}: client settings in {scram.ENV_FILE}")


def kafka_start_broker(b: Broker) -> None:
    """(Re)start one broker that is down and wait until the whole cluster is healthy again."""
    brokers = cluster(b.count)
    if pid := pid_of(b.name):
        log(f"{b.name} already running (pid {pid})")
        return
    kafka_jars()
    proc, _ = start_broker(b, brokers)
    wait_healthy(brokers, [(b, proc)])
    log(f"{b.name} back; cluster healthy")


def kafka_kill_broker(b: Broker) -> bool:
    """SIGKILL one broker (a crash, for chaos drills); False when it was not running."""
    pid = pid_of(b.name)
    if not pid:
        log(f"{b.name} is not running")
        return False
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    log(f"killed {b.name} (pid {pid}, SIGKILL)")
    return True


def kafka_version_line() -> str:
    jars = RUN.parent / "cache" / f"kafka-{KAFKA_VERSION}"
    return f"Apache Kafka {KAFKA_VERSION} (KRaft, jars {jars})"
