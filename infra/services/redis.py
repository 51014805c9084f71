"""Redis: a daemonised ``redis-server`` (installed from Debian packages when absent)."""

from __future__ import annotations

import shutil
import socket

from .common import (
    HOST,
    PORTS,
    RUN,
    already_up,
    apt_install,
    ensure_free,
    log,
    pid_of,
    sh,
    wait_for,
)

START_S = 30.0  # to answer at all, and to answer PING once loaded
LOAD_S = 900.0  # to load the append-only file

# How the claim store persists (docs/reliability.md). The workers' event-id claims must survive
# a Redis crash: an append-only file written before each reply (a process crash loses nothing;
# fsync once a second). No RDB snapshots on top: the AOF alone restores everything, and a
# snapshot of a few million claims every minute forked Redis and took seconds of a core.
# The AOF is rewritten (compacted: another fork that writes every claim) once it reaches 1 GB
# and has doubled, not from 64 MB: under a steady claim stream the default rewrote it every
# ~25 s, and each rewrite took a core for 1-3 s on this 2-core host, the workers' p99 at half
# load going from 77 ms without rewrites to 155 ms with them (docs/benchmarks.md). A 1-2 GB
# file takes ~30 s to load at start (``stack up`` waits for it).
PERSISTENCE = {
    "save": "",
    "appendonly": "yes",
    "appendfsync": "everysec",
    "auto-aof-rewrite-min-size": "1gb",
}
RUNTIME_SETTABLE = ("save", "auto-aof-rewrite-min-size")
"""What a Redis already up (started by an older stack) is given by ``CONFIG SET``."""


def redis_up() -> None:
    d = RUN / "redis"
    if pid_of("redis"):
        _wait_loaded()
    if already_up("redis", redis_healthy):
        _configure_running()  # one started by an older stack: as a new one would start
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
            *(arg for name, value in PERSISTENCE.items() for arg in (f"--{name}", value)),
            "--protected-mode",
            "yes",
        ]
    )
    wait_for("redis", lambda: redis_state() != "down", START_S)
    _wait_loaded()
    wait_for("redis", redis_healthy, START_S)
    log(f"redis up on {HOST}:{PORTS['redis']}")


def _wait_loaded() -> None:
    """Wait while Redis loads its append-only file (it answers ``-LOADING`` meanwhile): a few
    million claims take tens of seconds (9.5M: 31 s here). Returns at once otherwise."""
    if redis_state() == "loading":
        log("redis is loading its append-only file")
        wait_for("redis (loading its append-only file)", lambda: redis_state() != "loading", LOAD_S)


def _configure_running() -> None:
    """``CONFIG SET`` the :data:`RUNTIME_SETTABLE` part of :data:`PERSISTENCE` on the running
    Redis (one command: Redis >= 7 sets several parameters at once)."""
    words = ["CONFIG", "SET", *(w for n in RUNTIME_SETTABLE for w in (n, PERSISTENCE[n]))]
    command = f"*{len(words)}\r\n" + "".join(f"${len(w)}\r\n{w}\r\n" for w in words)
    with socket.create_connection((HOST, PORTS["redis"]), timeout=2) as s:
        s.sendall(command.encode())
        reply = s.recv(256)
    if not reply.startswith(b"+OK"):
        log(f"redis: could not set {', '.join(RUNTIME_SETTABLE)}: {reply!r}")


def redis_state() -> str:
    """``ready`` (answers PING), ``loading`` (loading its data set) or ``down``."""
    try:
        with socket.create_connection((HOST, PORTS["redis"]), timeout=2) as s:
            s.sendall(b"PING\r\n")
            reply = s.recv(64)
    except OSError:
        return "down"
    if reply.startswith(b"+PONG"):
        return "ready"
    return "loading" if reply.startswith(b"-LOADING") else "down"


def redis_healthy() -> bool:
    """Redis answers PING (its data set loaded)."""
    return redis_state() == "ready"
