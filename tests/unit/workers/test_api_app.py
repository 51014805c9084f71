"""The HTTP decision API's routes with the in-package Kafka and store doubles (no services):
auth, limits, validation, waiting, idempotency, the 202 -> GET path, probes and metrics."""

from __future__ import annotations

import json
import logging
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from models.spec import load_spec
from workers.api.app import NoApiKeysError, create_app
from workers.api.bridge import Readiness
from workers.api.doubles import FakeBridge, FakeStore, fake_decision
from workers.api.events import EventValidator
from workers.api.waiters import Rejected
from workers.settings import ApiOptions, ApiSettings
from workers.testing import valid_event

with warnings.catch_warnings():  # starlette deprecates its httpx-based TestClient (httpx2)
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.unit
NO_ENV_FILE: dict[str, Any] = {"_env_file": None}  # only these settings, no stack.env

KEYS = {"team-a": "key-a-0123456789", "team-b": "key-b-0123456789"}
A = {"X-API-Key": KEYS["team-a"]}
B = {"Authorization": f"Bearer {KEYS['team-b']}"}


def _settings(**api: Any) -> ApiSettings:
    options = {"keys": {k: SecretStr(v) for k, v in KEYS.items()}, "wait_s": 1.0, **api}
    return ApiSettings(**NO_ENV_FILE, api=ApiOptions(**options), database_url=None)


AppFactory = Callable[..., TestClient]


@pytest.fixture
def make_client() -> Iterator[AppFactory]:
    """``make_client(bridge, store=None, insecure=False, **api options)`` -> a started client."""
    clients: list[TestClient] = []

    def make(
        bridge: FakeBridge, store: FakeStore | None = None, insecure: bool = False, **api: Any
    ) -> TestClient:
        settings = _settings(**api)
        validator = EventValidator(settings.max_message_bytes, load_spec("credit_data"))
        app = create_app(settings, bridge, validator, store=store, insecure_no_auth=insecure)
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def _deciding(delay_s: float = 0.0) -> FakeBridge:
    return FakeBridge(decider=fake_decision, delay_s=delay_s)


def _metric(client: TestClient, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        metric, _, rest = key.partition("{")
        if metric == name and ",".join(sorted(rest.rstrip("}").split(","))) == want:
            return float(value)
    return 0.0


# ------------------------------------------------------------------------ auth and limits


def test_missing_or_wrong_key_is_401_and_publishes_nothing(make_client: AppFactory) -> None:
    bridge = _deciding()
    client = make_client(bridge)
    for headers in ({}, {"X-API-Key": "nope"}, {"Authorization": "Bearer nope"},
                    {"Authorization": f"Basic {KEYS['team-a']}"}):  # fmt: skip
        post = client.post("/v1/decisions", json=valid_event(1), headers=headers)
        assert post.status_code == 401, headers
        assert post.headers["www-authenticate"] == "Bearer"
        assert client.get("/v1/decisions/evt-1", headers=headers).status_code == 401
    assert bridge.published == []
    assert client.get("/healthz").status_code == 200  # probes need no key


def test_either_header_carries_the_key(make_client: AppFactory) -> None:
    client = make_client(_deciding())
    assert client.post("/v1/decisions", json=valid_event(1), headers=A).status_code == 200
    assert client.post("/v1/decisions", json=valid_event(2), headers=B).status_code == 200


def test_without_keys_the_app_refuses_unless_insecure(make_client: AppFactory) -> None:
    settings = ApiSettings(**NO_ENV_FILE, api=ApiOptions(), database_url=None)
    validator = EventValidator(settings.max_message_bytes, None)
    with pytest.raises(NoApiKeysError, match="--insecure-no-auth"):
        create_app(settings, FakeBridge(), validator)
    app = create_app(settings, _deciding(), validator, insecure_no_auth=True)
    with TestClient(app) as client:
        assert client.post("/v1/decisions", json=valid_event(1)).status_code == 200


def test_rate_limit_is_per_key_with_retry_after(make_client: AppFactory) -> None:
    client = make_client(_deciding(), rate_per_s=0.01, burst=2)
    codes = [client.post("/v1/decisions", json=valid_event(i), headers=A).status_code
             for i in range(3)]  # fmt: skip
    assert codes == [200, 200, 429]
    limited = client.post("/v1/decisions", json=valid_event(9), headers=A)
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert client.post("/v1/decisions", json=valid_event(3), headers=B).status_code == 200


def test_oversize_body_is_413_declared_or_streamed(make_client: AppFactory) -> None:
    bridge = _deciding()
    client = make_client(bridge)
    limit = _settings().max_message_bytes
    event = valid_event(1)
    big = json.dumps({**event, "producer": "x" * limit}).encode()
    declared = client.post("/v1/decisions", content=big, headers=A)
    assert declared.status_code == 413 and str(limit) in declared.json()["detail"]
    chunked = client.post(
        "/v1/decisions", content=iter([big[:1000], big[1000:]]), headers=A
    )  # no Content-Length: counted while read
    assert chunked.status_code == 413
    assert bridge.published == []


# ------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "not_object"),
        (json.dumps({**valid_event(1), "schema_version": 2}).encode(), "schema_version"),
        (json.dumps({k: v for k, v in valid_event(1).items() if k != "event_id"}).encode(),
         "validation"),
        (json.dumps({**valid_event(1), "features": {"Nope": 1}}).encode(), "unknown_feature"),
        (json.dumps({**valid_event(1), "features": {"Amount": "lots"}}).encode(), "feature_type"),
    ],
)  # fmt: skip
def test_a_bad_event_is_422_with_the_contract_reason(
    make_client: AppFactory, body: bytes, reason: str
) -> None:
    bridge = _deciding()
    client = make_client(bridge)
    resp = client.post("/v1/decisions", content=body, headers=A)
    assert resp.status_code == 422
    detail = resp.json()["detail"]
    assert detail["reason"] == reason and detail["source"] == "api"
    assert detail["message"] and detail["stage"] in ("decode", "validate")
    if reason == "validation":
        assert detail["errors"][0]["loc"] == ["event_id"]
    assert bridge.published == []


# ------------------------------------------------------------------------ deciding


def test_decision_within_the_wait_is_200_with_reasons(make_client: AppFactory) -> None:
    bridge = _deciding(delay_s=0.05)
    client = make_client(bridge)
    event = valid_event(7)
    body = json.dumps(event).encode()
    resp = client.post("/v1/decisions", content=body, headers=A)
    assert resp.status_code == 200 and resp.headers["x-decisionflow-source"] == "new"
    decision = resp.json()
    assert decision["event_id"] == "evt-7" and decision["reasons"][0]["code"] == "R12"
    # published once, keyed by the entity id as `decisionflow produce` does, bytes unchanged
    assert bridge.published == [(str(event["entity_id"]).encode(), body)]


def test_the_same_event_twice_is_one_decision_published_once(make_client: AppFactory) -> None:
    bridge = _deciding()
    client = make_client(bridge)
    first = client.post("/v1/decisions", json=valid_event(1), headers=A)
    again = client.post("/v1/decisions", json=valid_event(1, amount=99.0), headers=A)
    assert first.status_code == again.status_code == 200
    assert again.headers["x-decisionflow-source"] == "recent"
    assert again.content == first.content
    assert len(bridge.published) == 1
    assert _metric(client, "decisionflow_api_known_decisions_total", source="recent") == 1


def test_concurrent_duplicates_publish_once(make_client: AppFactory) -> None:
    bridge = _deciding(delay_s=0.3)
    client = make_client(bridge)
    results: list[bytes] = []

    def post() -> None:
        resp = client.post("/v1/decisions", json=valid_event(5), headers=A)
        assert resp.status_code == 200
        results.append(resp.content)

    threads = [threading.Thread(target=post) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(results) == 3 and len(set(results)) == 1
    assert len(bridge.published) == 1


def test_time_out_is_202_then_get_serves_the_decision(make_client: AppFactory) -> None:
    bridge = FakeBridge()  # the workers are slow: nothing decides for now
    client = make_client(bridge)
    event = {**valid_event(1), "event_id": "evt/1 ?"}  # any id survives the URL
    resp = client.post("/v1/decisions?wait=0.05", json=event, headers=A)
    assert resp.status_code == 202
    location = resp.headers["location"]
    assert location == "/v1/decisions/evt%2F1%20%3F" == resp.json()["location"]
    assert resp.json()["status"] == "pending"
    pending = client.get(location, headers=A)
    assert pending.status_code == 404 and pending.json()["detail"]["status"] == "pending"
    # asked again while pending: not published again
    assert client.post("/v1/decisions?wait=0", json=event, headers=A).status_code == 202
    assert len(bridge.published) == 1
    decision = fake_decision(event)
    bridge.emit("evt/1 ?", decision)
    got = client.get(location, headers=A)
    assert got.status_code == 200 and got.content == decision
    assert client.post("/v1/decisions", json=event, headers=A).content == decision
    assert len(bridge.published) == 1
    assert _metric(client, "decisionflow_api_wait_timeouts_total") == 2


def test_unknown_event_is_404(make_client: AppFactory) -> None:
    resp = make_client(FakeBridge()).get("/v1/decisions/never-sent", headers=A)
    assert resp.status_code == 404 and resp.json()["detail"]["status"] == "unknown"


def test_a_decision_in_the_store_is_returned_without_publishing(make_client: AppFactory) -> None:
    event = valid_event(3)
    stored = fake_decision(event, "approve")
    bridge, store = _deciding(), FakeStore({"evt-3": stored})
    client = make_client(bridge, store=store)
    resp = client.post("/v1/decisions", json=event, headers=A)
    assert resp.status_code == 200 and resp.content == stored
    assert resp.headers["x-decisionflow-source"] == "store"
    assert client.get("/v1/decisions/evt-3", headers=A).content == stored
    assert bridge.published == []


def test_a_dead_letter_from_a_worker_ends_the_wait_with_422(make_client: AppFactory) -> None:
    why = Rejected("unknown_feature", "validate", "features not in spec 'v2': ['Amount']")
    bridge = FakeBridge(decider=lambda _event: why)
    client = make_client(bridge)
    resp = client.post("/v1/decisions", json=valid_event(4), headers=A)
    assert resp.status_code == 422
    assert resp.json()["detail"] == {
        "reason": why.reason, "stage": why.stage, "message": why.message, "source": "worker"
    }  # fmt: skip
    assert client.get("/v1/decisions/evt-4", headers=A).status_code == 422
    bridge.decider = fake_decision  # a second attempt is published again
    assert client.post("/v1/decisions", json=valid_event(4), headers=A).status_code == 200
    assert len(bridge.published) == 2


def test_a_failed_publish_is_503_and_may_be_retried(make_client: AppFactory) -> None:
    bridge = _deciding()
    bridge.fail_publish = True
    client = make_client(bridge)
    assert client.post("/v1/decisions", json=valid_event(1), headers=A).status_code == 503
    assert client.get("/v1/decisions/evt-1", headers=A).json()["detail"]["status"] == "unknown"
    bridge.fail_publish = False
    assert client.post("/v1/decisions", json=valid_event(1), headers=A).status_code == 200


def test_too_many_waiters_is_503(make_client: AppFactory) -> None:
    client = make_client(FakeBridge(), max_waiters=1)
    started = threading.Event()

    def slow() -> None:
        started.set()
        client.post("/v1/decisions?wait=1", json=valid_event(1), headers=A)

    thread = threading.Thread(target=slow)
    thread.start()
    started.wait(5)
    for _ in range(50):  # until the first request waits
        if _metric(client, "decisionflow_api_waiters") == 1:
            break
        time.sleep(0.02)
    resp = client.post("/v1/decisions", json=valid_event(2), headers=A)
    thread.join(5)
    assert resp.status_code == 503


# ------------------------------------------------------------------------ operations


def test_readyz_follows_the_bridge(make_client: AppFactory) -> None:
    bridge = FakeBridge()
    client = make_client(bridge)
    assert client.get("/readyz").status_code == 200
    bridge.readiness_now = Readiness(True, True, False, 5000, {"lag": "5000"})
    resp = client.get("/readyz")
    assert resp.status_code == 503
    assert resp.json()["caught_up"] is False and resp.json()["lag"] == 5000


def test_metrics_count_requests_by_route_and_status(make_client: AppFactory) -> None:
    client = make_client(_deciding())
    client.post("/v1/decisions", json=valid_event(1), headers=A)
    client.post("/v1/decisions", json=valid_event(1))
    client.get("/v1/decisions/evt-1", headers=A)
    post = {"route": "/v1/decisions", "method": "POST"}
    assert _metric(client, "decisionflow_api_requests_total", **post, status="200") == 1
    assert _metric(client, "decisionflow_api_requests_total", **post, status="401") == 1
    assert _metric(client, "decisionflow_api_events_published_total") == 1
    assert _metric(client, "decisionflow_api_request_seconds_count", route="/v1/decisions") == 2
    assert _metric(client, "decisionflow_api_waiters") == 0
    assert _metric(client, "decisionflow_api_recent_decisions") == 1


def test_keys_never_reach_the_logs(
    make_client: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(_deciding())
    client.post("/v1/decisions", json=valid_event(1), headers=A)
    client.post("/v1/decisions", json=valid_event(2), headers={"X-API-Key": "wrong-key"})
    text = caplog.text + repr(_settings())
    assert "team-a" in caplog.text  # names are logged
    assert all(key not in text for key in KEYS.values())


def test_openapi_documents_the_routes(make_client: AppFactory) -> None:
    client = make_client(FakeBridge())
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    post = spec["paths"]["/v1/decisions"]["post"]
    schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert "event_id" in schema["required"]
    assert {"200", "202", "401", "413", "422", "429"} <= set(post["responses"])
    assert "/v1/decisions/{event_id}" in spec["paths"]
