"""Local stack for decisionflow: Apache Kafka (KRaft, from Maven jars), Redis, PostgreSQL.

Usage: infra/stack {up|down|status|logs [service]|env}

Everything lives under one run directory (DECISIONFLOW_RUN_DIR, default <home>/stack, the home
being DECISIONFLOW_HOME or <repo>/var as in models/paths.py):
data, logs, pid files and ``stack.env`` (the addresses clients should use). Services bind to
127.0.0.1 only, on configurable ports. ``up`` is idempotent: a healthy service is left alone.
``down`` stops every process it started and checks none is left.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

# run as a script, this file's folder is first on sys.path: the service modules are `services`
from services.common import HOST, PORTS, RUN, log, pid_of, stop_pid
from services.kafka import kafka_healthy, kafka_up, kafka_version_line
from services.postgres import PG_DB, PG_USER, postgres_down, postgres_healthy, postgres_up
from services.redis import redis_healthy, redis_up

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
