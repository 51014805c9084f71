"""`infra/stack` on its own run directory and ports: up twice, status, down, nothing left."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis

REPO = Path(__file__).resolve().parents[2]


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state  # a zombie has exited already


def _stack(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "infra" / "stack.py"), *args],
        env=env,
        text=True,
        capture_output=True,
        timeout=300,
    )


def test_up_twice_status_down_leaves_nothing(tmp_path: Path) -> None:
    kafka, controller, redis_port, pg = _free_ports(4)
    env = {
        **os.environ,
        "DECISIONFLOW_RUN_DIR": str(tmp_path / "run"),
        "DECISIONFLOW_CACHE_DIR": str(REPO / "var" / "cache"),
        "DECISIONFLOW_KAFKA_PORT": str(kafka),
        "DECISIONFLOW_KAFKA_CONTROLLER_PORT": str(controller),
        "DECISIONFLOW_REDIS_PORT": str(redis_port),
        "DECISIONFLOW_POSTGRES_PORT": str(pg),
        "DECISIONFLOW_TOPIC_PARTITIONS": "2",
    }
    try:
        first = _stack(env, "up")
        assert first.returncode == 0, first.stdout + first.stderr
        with redis.Redis(port=redis_port) as client:  # as an older stack started it
            client.config_set("save", "60 1000")
            client.config_set("auto-aof-rewrite-min-size", "64mb")
        t0 = time.monotonic()
        second = _stack(env, "up")
        print(f"second `stack up` took {time.monotonic() - t0:.1f}s")
        assert second.returncode == 0, second.stdout + second.stderr
        assert "already up" in second.stdout
        with redis.Redis(port=redis_port) as client:  # configured, even when already up
            assert client.config_get("save")["save"] == ""
            assert client.config_get("auto-aof-*")["auto-aof-rewrite-min-size"] == str(1 << 30)

        status = _stack(env, "status")
        assert status.returncode == 0, status.stdout
        lines = {ln.split()[0]: ln.split() for ln in status.stdout.splitlines()}
        assert {name: lines[name][1] for name in ("kafka", "redis", "postgres")} == {
            "kafka": "up",
            "redis": "up",
            "postgres": "up",
        }
        pids = [int(lines[n][3].removeprefix("pid=")) for n in ("kafka", "redis", "postgres")]
        assert all(_alive(p) for p in pids)
        assert f"127.0.0.1:{kafka}" in lines["kafka"][2]
    finally:
        down = _stack(env, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(p) for p in pids), "a stack process survived `down`"

    after = _stack(env, "status")
    assert after.returncode == 3
    assert [ln.split()[1] for ln in after.stdout.splitlines()] == ["down", "down", "down"]


def test_taken_port_is_reported_not_hijacked(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        env = {
            **os.environ,
            "DECISIONFLOW_RUN_DIR": str(tmp_path / "run"),
            "DECISIONFLOW_REDIS_PORT": str(port),
        }
        # only redis: run the function directly through the module to avoid starting kafka
        code = "import stack, sys; stack.redis_up()"
        out = subprocess.run(
            [sys.executable, "-c", code],
            cwd=REPO / "infra",
            env=env,
            text=True,
            capture_output=True,
            timeout=60,
        )
    assert out.returncode != 0
    assert f"port {port} for redis is taken" in out.stderr + out.stdout
