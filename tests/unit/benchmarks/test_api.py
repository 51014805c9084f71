"""The ``api`` benchmark phase's measuring loop and report section, against the API on a
loopback port with the in-package Kafka double (nothing is timed for a verdict)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from pydantic import SecretStr

from benchmarks.api import api_section, open_loop
from benchmarks.report import markdown
from devtools.launch import free_port
from workers.api.app import create_app
from workers.api.doubles import FakeBridge, fake_decision
from workers.api.events import EventValidator
from workers.settings import ApiOptions, ApiSettings
from workers.testing import valid_event

pytestmark = pytest.mark.unit
NO_ENV_FILE: dict[str, Any] = {"_env_file": None}
KEY = "bench-key-0123456789"


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    """The API with a double that decides events whose Amount is under 2000 (others pend)."""

    def decider(event: dict[str, Any]) -> bytes | None:
        return fake_decision(event) if event["features"]["Amount"] < 2000 else None

    settings = ApiSettings(
        **NO_ENV_FILE, api=ApiOptions(keys={"b": SecretStr(KEY)}, wait_s=0.1), database_url=None
    )
    app = create_app(settings, FakeBridge(decider=decider), EventValidator(4096, None))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive()
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_open_loop_times_the_200s_and_counts_the_rest(url: str) -> None:
    bodies = [json.dumps(valid_event(i, 5000.0 if i % 4 == 0 else 100.0)).encode()
              for i in range(20)]  # fmt: skip
    bodies.append(b"{bad")
    point = open_loop(url, KEY, bodies, rate=100.0)
    assert point["requests"] == 21 and point["ok"] == 15
    assert point["pending"] == 5 and point["errors"] == 1
    assert 0 < point["p50"] <= point["p99"] <= point["max"] < 5000
    assert point["achieved_rate"] == pytest.approx(100.0, rel=0.5)


def test_the_report_shows_the_api_points() -> None:
    assert api_section({}) == []
    res = {"api": {"wait_s": 5.0, "config": "1 worker",
                   "points": [{"target_rate": 50.0, "achieved_rate": 49.8, "requests": 750,
                               "ok": 750, "pending": 0, "errors": 0, "p50": 61.2, "p99": 140.4,
                               "max": 180.0}]}}  # fmt: skip
    lines = api_section(res)
    assert "| 50 | 50 | 750 | 750 | 0 | 0 | 61 ms | 140 ms | 180 ms |" in lines
    assert "POST /v1/decisions latency" in markdown(res)
