"""`infra/stack up` waits for a Redis that is still loading its append-only file (it answers
``-LOADING`` for as long as that takes: 31 s for the 9.5M claims a benchmark soak left)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import pytest

INFRA = Path(__file__).resolve().parents[3] / "infra"


@pytest.fixture
def redis_module(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(INFRA))
    from services import redis

    monkeypatch.setattr(redis, "START_S", 0.5)
    return redis


@contextmanager
def _fake_redis(loading_s: float) -> Iterator[int]:
    """A server that answers PING with -LOADING for ``loading_s`` seconds, then +PONG."""
    server = socket.create_server(("127.0.0.1", 0))
    started = time.monotonic()
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(64)
                loading = time.monotonic() - started < loading_s
                conn.sendall(b"-LOADING Redis is loading\r\n" if loading else b"+PONG\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        server.close()


def test_start_waits_past_the_start_timeout_while_redis_loads(
    redis_module: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _fake_redis(loading_s=1.5) as port:
        monkeypatch.setitem(redis_module.PORTS, "redis", port)
        assert redis_module.redis_state() == "loading"
        assert not redis_module.redis_healthy()
        t0 = time.monotonic()
        redis_module._wait_loaded()  # START_S is 0.5 s: a plain health wait would give up
        assert time.monotonic() - t0 >= 1.0
        assert redis_module.redis_state() == "ready" and redis_module.redis_healthy()


def test_nothing_listening_is_down(
    redis_module: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    monkeypatch.setitem(redis_module.PORTS, "redis", port)
    assert redis_module.redis_state() == "down"
