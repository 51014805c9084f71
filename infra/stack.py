"""Local stack for decisionflow: Apache Kafka (KRaft, from Maven jars), Redis, PostgreSQL.

Usage: infra/stack up [--brokers N] | down | status | logs [service] | env
       infra/stack kill-broker N | start-broker N | leader TOPIC PARTITION

Everything lives under one run directory (DECISIONFLOW_RUN_DIR, default <home>/stack, the home
being DECISIONFLOW_HOME or <repo>/var as in models/paths.py):
data, logs, pid files and ``stack.env`` (the addresses clients should use). Services bind to
127.0.0.1 only, on configurable ports. ``up`` is idempotent: a healthy service is left alone.
``down`` stops every process it started and checks none is left.

Kafka is one broker+controller by default. ``up --brokers 3`` runs a 3-node KRaft cluster
(each node broker and controller; topics replicated 3x, min.insync.replicas 2); the count is
remembered in the run dir, so the other commands and a plain ``up`` use it. For chaos drills:
``kill-broker N`` (SIGKILL), ``start-broker N`` (start it again, wait for a healthy cluster),
``leader TOPIC PARTITION`` (prints the leading broker's number). Every broker also has a
SASL_PLAINTEXT/SCRAM-SHA-512 listener; its client settings are in ``<run>/kafka/scram.env``.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

# run as a script, this file's folder is first on sys.path: the service modules are `services`
from services.common import HOST, PORTS, RUN, log, pid_of, stop_pid, stop_pids
from services.kafka import kafka_kill_broker, kafka_start_broker, kafka_up, kafka_version_line
from services.kafka_admin import kafka_healthy, live_brokers, partition_leader
from services.kafka_layout import (
    MAX_BROKERS,
    bootstrap,
    broker,
    cluster,
    remember_count,
    remembered_count,
)
from services.postgres import PG_DB, PG_USER, postgres_down, postgres_healthy, postgres_up
from services.redis import redis_healthy, redis_up

# every folder a broker may have run from: the lone broker's and each cluster node's
KAFKA_NAMES = ("kafka", *(f"kafka-{i}" for i in range(1, MAX_BROKERS + 1)))

# --------------------------------------------------------------------------- commands


@dataclass(frozen=True)
class Service:
    name: str
    port: int
    healthy: Callable[[], bool]


def services() -> list[Service]:
    """What ``status`` reports: the broker (or each cluster node), Redis, PostgreSQL. The lone
    broker is up after a produce/consume round trip; a cluster node when the cluster counts
    it as a live (registered, unfenced) broker."""
    brokers = cluster()
    if len(brokers) == 1:
        kafka = [Service("kafka", brokers[0].port, functools.partial(kafka_healthy, brokers))]
    else:
        live = functools.cache(functools.partial(live_brokers, brokers))  # asked once
        kafka = [
            Service(b.name, b.port, functools.partial(_is_live, live, b.node)) for b in brokers
        ]
    return [
        *kafka,
        Service("redis", PORTS["redis"], redis_healthy),
        Service("postgres", PORTS["postgres"], postgres_healthy),
    ]


def _is_live(live: Callable[[], set[int]], node: int) -> bool:
    return node in live()


def env_lines() -> list[str]:
    return [
        f"DECISIONFLOW_KAFKA_BOOTSTRAP_SERVERS={bootstrap(cluster())}",
        f"DECISIONFLOW_REDIS_URL=redis://{HOST}:{PORTS['redis']}/0",
        f"DECISIONFLOW_DATABASE_URL=postgresql+psycopg://{PG_USER}@{HOST}:{PORTS['postgres']}/{PG_DB}",
        f"DECISIONFLOW_RUN_DIR={RUN}",
    ]


def running_brokers() -> dict[str, int]:
    """Live broker processes of this run dir, whatever the remembered count: name -> pid."""
    return {name: pid for name in KAFKA_NAMES if (pid := pid_of(name))}


def choose_broker_count(requested: int | None) -> int:
    """The broker count for ``up``: the one asked for (remembered from now on), else the
    remembered one. Switching needs the running brokers stopped first."""
    current = remembered_count()
    if requested is None:
        return current
    if not 1 <= requested <= MAX_BROKERS:
        raise SystemExit(f"[stack] --brokers must be 1..{MAX_BROKERS}")
    if requested != current and running_brokers():
        raise SystemExit(
            f"[stack] kafka runs with {current} broker(s) here; "
            f"`infra/stack down` first to switch to {requested}"
        )
    remember_count(requested)
    return requested


def cmd_up(brokers: int | None) -> int:
    t0 = time.monotonic()
    RUN.mkdir(parents=True, exist_ok=True)
    count = choose_broker_count(brokers)
    steps: list[tuple[str, Callable[[], None]]] = [
        ("kafka", functools.partial(kafka_up, count)),
        ("redis", redis_up),
        ("postgres", postgres_up),
    ]
    for name, up in steps:
        t = time.monotonic()
        up()
        log(f"{name} ready in {time.monotonic() - t:.1f}s")
    (RUN / "stack.env").write_text("\n".join(env_lines()) + "\n")
    log(kafka_version_line() + (f", {count} brokers" if count > 1 else ""))
    log(f"stack up in {time.monotonic() - t0:.1f}s; addresses in {RUN / 'stack.env'}")
    return 0


def cmd_status() -> int:
    ok = True
    for s in services():
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
    kafka = running_brokers()
    if kafka:
        log("stopping " + ", ".join(f"{name} (pid {pid})" for name, pid in kafka.items()))
        stop_pids(kafka, timeout=60)  # all at once: a quorum member alone waits for the others
    pid = pid_of("redis")
    if pid:
        log(f"stopping redis (pid {pid})")
        stop_pid("redis", pid, timeout=15)
    postgres_down()
    left = [n for n in (*KAFKA_NAMES, "redis", "postgres") if pid_of(n)]
    if left:
        log(f"still running: {', '.join(left)}")
        return 1
    log("stack down")
    return 0


def cmd_logs(service: str | None) -> int:
    files = {b.name: b.dir / "kafka.log" for b in cluster()}
    files |= {
        "redis": RUN / "redis" / "redis.log",
        "postgres": RUN / "postgres" / "postgres.log",
    }
    for name, f in files.items():
        wanted = service in (None, name) or (service == "kafka" and name.startswith("kafka"))
        if wanted and f.exists():
            print(f"==> {f} <==")
            print("\n".join(f.read_text(errors="replace").splitlines()[-40:]))
    return 0


def cmd_kill_broker(node: int) -> int:
    return 0 if kafka_kill_broker(broker(node)) else 1


def cmd_start_broker(node: int) -> int:
    kafka_start_broker(broker(node))
    return 0


def cmd_leader(topic: str, partition: int) -> int:
    leader = partition_leader(topic, partition, cluster())
    print(leader if leader is not None else "none")
    return 0 if leader is not None else 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="infra/stack", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start what is not running (idempotent)")
    up.add_argument(
        "--brokers", type=int, help="Kafka brokers: 1, or 3 for a replicated cluster (remembered)"
    )
    sub.add_parser("down", help="stop everything this run dir started")
    sub.add_parser("status", help="one line per service; exit 3 unless all are up")
    logs = sub.add_parser("logs", help="the last lines of each service's log")
    logs.add_argument("service", nargs="?", help="kafka, kafka-N, redis or postgres")
    sub.add_parser("env", help="the addresses clients use (as in stack.env)")
    for name, what in (("kill-broker", "SIGKILL broker N"), ("start-broker", "start broker N")):
        sub.add_parser(name, help=what).add_argument("node", type=int, metavar="N")
    leader = sub.add_parser("leader", help="the broker number leading a partition")
    leader.add_argument("topic")
    leader.add_argument("partition", type=int)
    return p


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    args = parser().parse_args(argv)
    commands: dict[str, Callable[[], int]] = {
        "up": lambda: cmd_up(args.brokers),
        "down": cmd_down,
        "status": cmd_status,
        "logs": lambda: cmd_logs(args.service),
        "env": lambda: print("\n".join(env_lines())) or 0,
        "kill-broker": lambda: cmd_kill_broker(args.node),
        "start-broker": lambda: cmd_start_broker(args.node),
        "leader": lambda: cmd_leader(args.topic, args.partition),
    }
    return commands[args.cmd]()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
