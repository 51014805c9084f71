"""The Python client over real HTTP (uvicorn on a loopback port) against the API with the
in-package Kafka double, on both transports; and `decisionflow serve` refusing to run without
keys."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from click.testing import CliRunner
from pydantic import SecretStr

from devtools.launch import free_port
from models.spec import load_spec
from workers.api.app import create_app
from workers.api.doubles import FakeBridge, fake_decision
from workers.api.events import EventValidator
from workers.cli import cli
from workers.client import ApiError, DecisionClient, InvalidEventError, Pending
from workers.settings import ApiOptions, ApiSettings
from workers.testing import valid_event

pytestmark = pytest.mark.unit
NO_ENV_FILE: dict[str, Any] = {"_env_file": None}  # only these settings, no stack.env

KEY = "client-key-0123456789"


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, FakeBridge]]:
    """The app on a loopback port; its bridge decides events whose Amount is under 2000."""

    def decider(event: dict[str, object]) -> bytes | None:
        amount = event["features"]["Amount"]  # type: ignore[index]
        return fake_decision(event) if amount < 2000 else None  # type: ignore[arg-type]

    bridge = FakeBridge(decider=decider)
    settings = ApiSettings(
        **NO_ENV_FILE,
        api=ApiOptions(keys={"c": SecretStr(KEY)}, wait_s=0.2),
        database_url=None,
    )
    app = create_app(settings, bridge, EventValidator(4096, load_spec("credit_data")))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", bridge
    server.should_exit = True
    thread.join(10)


@pytest.mark.parametrize("use_httpx", [True, False], ids=["httpx", "urllib"])
def test_client_decides_waits_and_reports_errors(
    served: tuple[str, FakeBridge], use_httpx: bool
) -> None:
    url, bridge = served
    tag = "h" if use_httpx else "u"
    with DecisionClient(url, KEY, use_httpx=use_httpx, timeout=10) as client:
        event = {**valid_event(1), "event_id": f"{tag}-1"}
        decision = client.decide(event)
        assert isinstance(decision, dict) and decision["event_id"] == f"{tag}-1"
        assert decision["reasons"][0]["code"] == "R12"

        slow = {**valid_event(2, amount=5000.0), "event_id": f"{tag}-2"}
        pending = client.decide(slow, wait=0.05)
        assert isinstance(pending, Pending) and pending.event_id == f"{tag}-2"
        assert client.get(pending) is None
        bridge.emit(f"{tag}-2", fake_decision(slow))
        assert client.wait(pending, timeout=5)["event_id"] == f"{tag}-2"
        assert client.get(f"{tag}-2") is not None

        with pytest.raises(InvalidEventError) as bad:
            client.decide({**event, "features": {"Nope": 1}})
        assert bad.value.reason == "unknown_feature" and bad.value.source == "api"
    with DecisionClient(url, "wrong", use_httpx=use_httpx) as anonymous:
        with pytest.raises(ApiError) as denied:
            anonymous.decide(event)
        assert denied.value.status == 401


def test_serve_refuses_to_start_without_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DECISIONFLOW_API__KEYS", raising=False)
    monkeypatch.setenv("DECISIONFLOW_ENV_FILE", "/nonexistent.env")
    result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code == 2
    assert "DECISIONFLOW_API__KEYS" in result.output and "--insecure-no-auth" in result.output
