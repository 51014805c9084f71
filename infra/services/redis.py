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


def redis_up() -> None:
    d = RUN / "redis"
    if pid_of("redis"):
        _wait_loaded()
    if already_up("redis", redis_healthy):
        _no_snapshots()  # a Redis started by an older stack took RDB snapshots as well
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
            # the workers' event-id claims must survive a Redis crash: AOF, written before
            # each reply (a process crash loses nothing; fsync once a second). No RDB
            # snapshots on top: AOF alone restores everything, and a snapshot of a few
            # million claims every minute forked Redis and took seconds of a core each time
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
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


def _no_snapshots() -> None:
    """``CONFIG SET save ""`` on the running Redis (what ``--save ""`` starts it with)."""
    with socket.create_connection((HOST, PORTS["redis"]), timeout=2) as s:
        s.sendall(b"*4\r\n$6\r\nCONFIG\r\n$3\r\nSET\r\n$4\r\nsave\r\n$0\r\n\r\n")
        reply = s.recv(64)
    if not reply.startswith(b"+OK"):
        log(f"redis: could not turn RDB snapshots off: {reply!r}")


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
