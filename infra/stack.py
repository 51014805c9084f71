"""Local stack for decisionflow: Apache Kafka (KRaft, from Maven jars), Redis, PostgreSQL.

Usage: infra/stack {up|down|status|logs [service]|env}

Everything lives under one run directory (DECISIONFLOW_RUN_DIR, default <home>/stack, the home
being DECISIONFLOW_HOME or <repo>/var as in models/paths.py):
data, logs, pid files and ``stack.env`` (the addresses clients should use). Services bind to
127.0.0.1 only, on configurable ports. ``up`` is idempotent: a healthy service is left alone.
``down`` stops every process it started and checks none is left.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# the layout of models/paths.py: DECISIONFLOW_RUN_DIR, else <home>/stack (home: var/)
HOME = Path(os.environ.get("DECISIONFLOW_HOME") or REPO / "var")
RUN = Path(os.environ.get("DECISIONFLOW_RUN_DIR") or HOME / "stack").resolve()
HOST = "127.0.0.1"
KAFKA_VERSION = "4.2.2"  # keep in step with infra/pom.xml
PORTS = {
    "kafka": int(os.environ.get("DECISIONFLOW_KAFKA_PORT", "19092")),
    "controller": int(os.environ.get("DECISIONFLOW_KAFKA_CONTROLLER_PORT", "19093")),
    "redis": int(os.environ.get("DECISIONFLOW_REDIS_PORT", "16379")),
    "postgres": int(os.environ.get("DECISIONFLOW_POSTGRES_PORT", "15432")),
}
PARTITIONS = int(os.environ.get("DECISIONFLOW_TOPIC_PARTITIONS", "6"))
TOPICS = {
    "events": PARTITIONS,
    "decisions": PARTITIONS,
    "decisions.shadow": PARTITIONS,
    "events.dlq": 1,
    "outcomes": PARTITIONS,
}
PG_DB = "decisionflow"
PG_USER = "decisionflow"


def log(msg: str) -> None:
    print(f"[stack] {msg}", flush=True)


def sh(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)  # type: ignore[call-overload, no-any-return]


# --------------------------------------------------------------------------- processes


def pid_of(name: str) -> int | None:
    """The pid recorded for a service, if that process is alive and is ours."""
    f = RUN / name / f"{name}.pid"
    try:
        pid = int(f.read_text().split()[0])
        os.kill(pid, 0)
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except (OSError, ValueError, IndexError):
        return None
    # redis rewrites its process title, so its working directory (--dir) identifies it
    return pid if str(RUN) in cmdline or cwd.startswith(str(RUN)) else None


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((HOST, port)) == 0


def wait_for(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # the service is still starting
            pass
        time.sleep(0.3)
    raise SystemExit(f"[stack] {what} not healthy after {timeout:.0f}s; see `infra/stack logs`")


def stop_pid(name: str, pid: int, timeout: float = 30) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        # reap if it is our child (it is not, normally: services are daemonised)
        time.sleep(0.2)
    log(f"{name} (pid {pid}) ignored SIGTERM for {timeout:.0f}s; killing")
    os.kill(pid, signal.SIGKILL)


def ensure_free(name: str, port: int) -> None:
    if port_open(port):
        raise SystemExit(
            f"[stack] port {port} for {name} is taken by a process this stack did not start; "
            f"set DECISIONFLOW_{name.upper()}_PORT to a free port"
        )


def apt_install(*packages: str) -> None:
    if os.geteuid() != 0:
        raise SystemExit(f"[stack] please install {' '.join(packages)} (needs root)")
    log(f"installing {' '.join(packages)} from Debian packages")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )


# --------------------------------------------------------------------------- kafka


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


def kafka_up() -> None:
    d = RUN / "kafka"
    if pid_of("kafka") and kafka_healthy():
        log(f"kafka already up on {HOST}:{PORTS['kafka']}")
        return
    ensure_free("kafka", PORTS["kafka"])
    ensure_free("kafka_controller", PORTS["controller"])
    jars = kafka_jars()
    java = shutil.which("java")
    if not java:
        raise SystemExit("[stack] Java 17+ is needed to run the Kafka broker")
    d.mkdir(parents=True, exist_ok=True)
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
    cp = f"{jars}/*"
    jvm = [java, "-Xms256m", "-Xmx1g", f"-Dlog4j2.configurationFile={log4j}", "-cp", cp]
    if not (d / "data" / "meta.properties").exists():
        cluster_id = (d / "cluster.id").read_text().strip() if (d / "cluster.id").exists() else ""
        if not cluster_id:
            cluster_id = (
                sh([*jvm, "kafka.tools.StorageTool", "random-uuid"]).stdout.strip().split()[-1]
            )
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


# --------------------------------------------------------------------------- redis


def redis_up() -> None:
    d = RUN / "redis"
    if pid_of("redis") and redis_healthy():
        log(f"redis already up on {HOST}:{PORTS['redis']}")
        return
    ensure_free("redis", PORTS["redis"])
    server = shutil.which("redis-server")
    if not server:
        apt_install("redis-server")
        server = shutil.which("redis-server") or "/usr/bin/redis-server"
    d.mkdir(parents=True, exist_ok=True)
    sh(
        [
            server,
            "--bind",
            HOST,
            "--port",
            str(PORTS["redis"]),
            "--dir",
            str(d),
            "--daemonize",
            "yes",
            "--pidfile",
            str(d / "redis.pid"),
            "--logfile",
            str(d / "redis.log"),
            "--save",
            "60 1000",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
        ]
    )
    wait_for("redis", redis_healthy, 30)
    log(f"redis up on {HOST}:{PORTS['redis']}")


def redis_healthy() -> bool:
    with socket.create_connection((HOST, PORTS["redis"]), timeout=2) as s:
        s.sendall(b"PING\r\n")
        return s.recv(64).startswith(b"+PONG")


# --------------------------------------------------------------------------- postgres


def pg_bin() -> Path:
    """The newest PostgreSQL server's bin folder (installing the server when absent).

    The client package alone also creates /usr/lib/postgresql/<v>/bin (psql, pg_isready...):
    only a folder holding ``initdb`` and ``postgres`` counts.
    """

    def servers() -> list[Path]:
        found = [
            p
            for p in Path("/usr/lib/postgresql").glob("*/bin")
            if (p / "initdb").is_file() and (p / "postgres").is_file()
        ]
        return sorted(found, key=lambda p: int(p.parent.name))

    roots = servers()
    if not roots:
        apt_install("postgresql")
        roots = servers()
    if not roots:
        raise SystemExit("[stack] no PostgreSQL server after installing 'postgresql'")
    return roots[-1]


def as_pg_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the Debian `postgres` user then."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def postgres_up() -> None:
    d = RUN / "postgres"
    if pid_of("postgres") and postgres_healthy():
        log(f"postgres already up on {HOST}:{PORTS['postgres']}")
        return
    ensure_free("postgres", PORTS["postgres"])
    bindir = pg_bin()
    data = d / "data"
    d.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(d, "postgres", "postgres")
        for parent in (RUN, *RUN.parents):  # the postgres user must be able to reach d
            if parent == Path("/"):
                break
            parent.chmod(parent.stat().st_mode | 0o011)
    if not (data / "PG_VERSION").exists():
        log("initialising PostgreSQL cluster")
        sh(
            as_pg_user(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ]
            )
        )
    sh(
        as_pg_user(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(d / "postgres.log"),
                "-w",
                "-t",
                "60",
                "-o",
                f"-c listen_addresses={HOST} -c port={PORTS['postgres']} "
                f"-c unix_socket_directories={d} -c fsync=off "
                f"-c external_pid_file={d / 'postgres.pid'}",
                "start",
            ]
        )
    )
    wait_for("postgres", postgres_healthy, 60)
    psql = [
        str(bindir / "psql"),
        "-h",
        HOST,
        "-p",
        str(PORTS["postgres"]),
        "-U",
        "postgres",
        "-tAc",
    ]
    if sh([*psql, f"SELECT 1 FROM pg_roles WHERE rolname='{PG_USER}'"]).stdout.strip() != "1":
        sh([*psql, f"CREATE ROLE {PG_USER} LOGIN CREATEDB"])
    if sh([*psql, f"SELECT 1 FROM pg_database WHERE datname='{PG_DB}'"]).stdout.strip() != "1":
        sh([*psql, f"CREATE DATABASE {PG_DB} OWNER {PG_USER}"])
    log(f"postgres up on {HOST}:{PORTS['postgres']} (database {PG_DB})")


def postgres_healthy() -> bool:
    psql = pg_bin() / "psql"
    r = subprocess.run(
        [str(psql), "-h", HOST, "-p", str(PORTS["postgres"]), "-U", "postgres", "-tAc", "SELECT 1"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    return r.returncode == 0 and r.stdout.strip() == "1"


def postgres_down() -> None:
    data = RUN / "postgres" / "data"
    if pid_of("postgres") and (data / "postmaster.pid").exists():
        subprocess.run(
            as_pg_user([str(pg_bin() / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
            capture_output=True,
        )
    pid = pid_of("postgres")
    if pid:
        stop_pid("postgres", pid)


# --------------------------------------------------------------------------- commands


@dataclass(frozen=True)
class Service:
    name: str
    port: int
    up: Callable[[], None]
    healthy: Callable[[], bool]


SERVICES = [
    Service("kafka", PORTS["kafka"], kafka_up, kafka_healthy),
    Service("redis", PORTS["redis"], redis_up, redis_healthy),
    Service("postgres", PORTS["postgres"], postgres_up, postgres_healthy),
]


def env_lines() -> list[str]:
    return [
        f"DECISIONFLOW_KAFKA_BOOTSTRAP_SERVERS={HOST}:{PORTS['kafka']}",
        f"DECISIONFLOW_REDIS_URL=redis://{HOST}:{PORTS['redis']}/0",
        f"DECISIONFLOW_DATABASE_URL=postgresql+psycopg://{PG_USER}@{HOST}:{PORTS['postgres']}/{PG_DB}",
        f"DECISIONFLOW_RUN_DIR={RUN}",
    ]


def cmd_up() -> int:
    t0 = time.monotonic()
    RUN.mkdir(parents=True, exist_ok=True)
    for s in SERVICES:
        t = time.monotonic()
        s.up()
        log(f"{s.name} ready in {time.monotonic() - t:.1f}s")
    (RUN / "stack.env").write_text("\n".join(env_lines()) + "\n")
    log(kafka_version_line())
    log(f"stack up in {time.monotonic() - t0:.1f}s; addresses in {RUN / 'stack.env'}")
    return 0


def cmd_status() -> int:
    ok = True
    for s in SERVICES:
        pid = pid_of(s.name)
        try:
            healthy = pid is not None and s.healthy()
        except Exception:
            healthy = False
        state = "up" if healthy else ("unhealthy" if pid else "down")
        ok &= healthy
        print(f"{s.name:<9} {state:<10} {HOST}:{s.port:<6} pid={pid or '-'}")
    return 0 if ok else 3


def cmd_down() -> int:
    for name in ("kafka", "redis"):
        pid = pid_of(name)
        if pid:
            log(f"stopping {name} (pid {pid})")
            stop_pid(name, pid, timeout=60 if name == "kafka" else 15)
    postgres_down()
    left = [n for n in ("kafka", "redis", "postgres") if pid_of(n)]
    if left:
        log(f"still running: {', '.join(left)}")
        return 1
    log("stack down")
    return 0


def cmd_logs(service: str | None) -> int:
    files = {
        "kafka": RUN / "kafka" / "kafka.log",
        "redis": RUN / "redis" / "redis.log",
        "postgres": RUN / "postgres" / "postgres.log",
    }
    for name, f in files.items():
        if service in (None, name) and f.exists():
            print(f"==> {f} <==")
            print("\n".join(f.read_text(errors="replace").splitlines()[-40:]))
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"up", "down", "status", "logs", "env"}:
        print(__doc__)
        return 2
    cmd = argv[0]
    if cmd == "up":
        return cmd_up()
    if cmd == "down":
        return cmd_down()
    if cmd == "status":
        return cmd_status()
    if cmd == "env":
        print("\n".join(env_lines()))
        return 0
    return cmd_logs(argv[1] if len(argv) > 1 else None)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
