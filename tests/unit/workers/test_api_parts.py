"""The HTTP API's parts on their own: keys and rate limits, the decision hub and the records
its reader parses, validation, the store fallback and the settings."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from decisioning.contracts import Decision, dead_letter, encode_record
from decisioning.validation import EventError, UnknownFeatureError
from models.spec import load_spec
from storage import store
from workers.api.auth import ApiKeys, RateLimiter, TokenBucket
from workers.api.doubles import fake_decision
from workers.api.events import EventValidator, spec_for
from workers.api.store import StoreLookup
from workers.api.waiters import (
    BoundedIndex,
    DecisionHub,
    Outcome,
    Rejected,
    TooManyWaitersError,
    decision_event_id,
    rejected_event,
)
from workers.settings import ApiSettings
from workers.testing import valid_event

pytestmark = pytest.mark.unit
NO_ENV_FILE: dict[str, Any] = {"_env_file": None}  # only these settings, no stack.env


# ------------------------------------------------------------------------ auth


def test_keys_identify_their_name_and_nothing_else() -> None:
    keys = ApiKeys({"a": SecretStr("secret-a"), "b": SecretStr("secret-b")})
    assert keys.identify("secret-b") == "b"
    assert keys.identify("secret-") is None and keys.identify("") is None
    assert keys.identify(None) is None
    assert not ApiKeys({})


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_the_burst_then_the_rate() -> None:
    clock = _Clock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(0.5)
    clock.now += 0.5
    assert bucket.take() == 0.0
    clock.now += 100  # saving up stops at the burst
    assert [bucket.take() == 0.0 for _ in range(4)] == [True, True, True, False]


def test_rate_limiter_is_per_name_and_off_at_zero() -> None:
    clock = _Clock()
    limiter = RateLimiter(rate=0.5, burst=1, clock=clock)
    assert limiter.retry_after("a") == 0
    assert limiter.retry_after("a") == 2  # whole seconds, rounded up
    assert limiter.retry_after("b") == 0
    off = RateLimiter(rate=0, burst=1, clock=clock)
    assert all(off.retry_after("a") == 0 for _ in range(100))


# ------------------------------------------------------------------------ hub


def test_bounded_index_forgets_the_oldest() -> None:
    index: BoundedIndex[int] = BoundedIndex(2)
    for i, key in enumerate("abc"):
        index.put(key, i)
    assert "a" not in index and index.get("c") == 2 and len(index) == 2


def test_hub_resolves_waiters_from_another_thread() -> None:
    async def scenario() -> tuple[Outcome, Outcome]:
        hub = DecisionHub(size=10, max_waiters=2)
        hub.bind(asyncio.get_running_loop())
        first, second = hub.subscribe("e1"), hub.subscribe("e1")
        with pytest.raises(TooManyWaitersError):
            hub.subscribe("e2")
        assert hub.claim("e1") and not hub.claim("e1")  # published once
        reader = threading.Thread(target=hub.deliver, args=([("e1", b"{d}")], []))
        reader.start()
        reader.join()
        results = await asyncio.gather(first, second)
        assert hub.waiting == 0 and not hub.is_pending("e1")
        assert not hub.claim("e1")  # decided: never again
        done = hub.subscribe("e1")
        assert done.done()
        return results[0], done.result()

    assert asyncio.run(scenario()) == (b"{d}", b"{d}")


def test_hub_keeps_dead_letters_of_its_own_events_only() -> None:
    async def scenario() -> None:
        hub = DecisionHub(size=10, max_waiters=10)
        hub.bind(asyncio.get_running_loop())
        why = Rejected("feature_type", "validate", "bad")
        hub.deliver([], [("someone-elses", why)])
        assert hub.outcome("someone-elses") is None
        future = hub.subscribe("mine")
        assert hub.claim("mine")
        hub.deliver([], [("mine", why)])
        assert await future == why and hub.outcome("mine") == why
        assert hub.claim("mine")  # a dead-lettered event may be sent again
        assert hub.outcome("mine") is None

    asyncio.run(scenario())


def test_unsubscribe_and_release() -> None:
    async def scenario() -> None:
        hub = DecisionHub(size=10, max_waiters=1)
        future = hub.subscribe("e")
        hub.unsubscribe("e", future)
        assert future.cancelled() and hub.waiting == 0
        hub.subscribe("f")  # room again
        assert hub.claim("g")
        hub.release("g")
        assert not hub.is_pending("g") and hub.claim("g")

    asyncio.run(scenario())


# ------------------------------------------------------------------------ records


def test_the_reader_parses_decisions_and_dead_letters_of_events() -> None:
    event = valid_event(1)
    assert decision_event_id(fake_decision(event)) == "evt-1"
    assert decision_event_id(b"not json") is None and decision_event_id(None) is None
    raw = json.dumps({**event, "features": {"Nope": 1}}).encode()
    letter = encode_record(
        dead_letter(
            UnknownFeatureError("features not in spec 'x': ['Nope']"),
            raw,
            source_topic="events",
            source_partition=0,
            source_offset=7,
            failed_at=datetime.now(UTC),
        )
    )
    assert rejected_event(letter, "events") == (
        "evt-1",
        Rejected("unknown_feature", "validate", "features not in spec 'x': ['Nope']"),
    )
    assert rejected_event(letter, "other-events") is None
    garbage = encode_record(
        dead_letter(EventError("x"), b"\xff", source_topic="events", source_partition=0,
                    source_offset=8, failed_at=datetime.now(UTC))
    )  # fmt: skip
    assert rejected_event(garbage, "events") is None  # no event id to tell


# ------------------------------------------------------------------------ validation


def test_validator_with_and_without_a_feature_spec() -> None:
    raw = json.dumps({**valid_event(1), "features": {"Nope": 1}}).encode()
    contract_only = EventValidator(1024, None)
    assert contract_only.check(raw).event_id == "evt-1"
    with_spec = EventValidator(1024, load_spec("credit_data"))
    with pytest.raises(UnknownFeatureError):
        with_spec.check(raw)
    accepted = with_spec.check(json.dumps(valid_event(2)).encode())
    assert (accepted.event_id, accepted.entity_id) == ("evt-2", "app-000002")
    with pytest.raises(EventError) as err:
        with_spec.check(b"x" * 2000)
    assert err.value.reason == "oversize"


def test_spec_setting() -> None:
    assert spec_for("none", "/nowhere", "credit_data") == (None, None)
    spec, source = spec_for("credit_data", "/nowhere", "credit_data")
    assert spec is not None and spec.name == "credit_data" and source is None


# ------------------------------------------------------------------------ store


def test_store_lookup_returns_the_landed_decision(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    lookup = StoreLookup(url)
    assert lookup.decision("evt-1") is None  # no tables yet: a miss, not an error
    engine = store.make_engine(url)
    store.create_schema(engine)
    landed = Decision.model_validate_json(fake_decision(valid_event(1)))
    with engine.begin() as conn:
        store.write_decisions(conn, [landed])
    found = lookup.decision("evt-1")
    assert found is not None and Decision.model_validate_json(found) == landed
    assert lookup.decision("evt-2") is None
    lookup.close()
    engine.dispose()


# ------------------------------------------------------------------------ settings


def test_api_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DECISIONFLOW_API__KEYS", '{"team-a": "k-123456"}')
    monkeypatch.setenv("DECISIONFLOW_API__WAIT_S", "0.5")
    monkeypatch.setenv("DECISIONFLOW_DATABASE_URL", "")
    s = ApiSettings(**NO_ENV_FILE)
    assert s.api.keys["team-a"].get_secret_value() == "k-123456" and s.api.wait_s == 0.5
    assert "k-123456" not in repr(s) and s.database_url is None
    monkeypatch.setenv("DECISIONFLOW_API__KEYS", '["k-1", "k-2"]')
    assert sorted(ApiSettings(**NO_ENV_FILE).api.keys) == ["key1", "key2"]
    monkeypatch.setenv("DECISIONFLOW_API__KEYS", '{"empty": ""}')
    with pytest.raises(ValidationError, match="must not be empty"):
        ApiSettings(**NO_ENV_FILE)
