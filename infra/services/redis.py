"""Redis: a daemonised ``redis-server`` (installed from Debian packages when absent)."""

from __future__ import annotations

import shutil
import socket

from .common import HOST, PORTS, RUN, already_up, apt_install, ensure_free, log, sh, wait_for


def redis_up() -> None:
    d = RUN / "redis"
    if already_up("redis", redis_healthy):
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
    wait_for("redis", redis_healthy, 30)
    log(f"redis up on {HOST}:{PORTS['redis']}")


def redis_healthy() -> bool:
    with socket.create_connection((HOST, PORTS["redis"]), timeout=2) as s:
        s.sendall(b"PING\r\n")
        return s.recv(64).startswith(b"+PONG")
