"""In-package doubles of the API's Kafka bridge and store, for tests without services.

:class:`FakeBridge` records what is published and, when given a ``decider``, answers each
event through the same :class:`~workers.api.waiters.DecisionHub` path the real reader uses.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from decisioning.contracts import Decision, Reason, encode_record
from workers.api.bridge import PublishError, Readiness
from workers.api.waiters import DecisionHub, Outcome, Rejected

__all__ = ["FakeBridge", "FakeStore", "fake_decision"]


def fake_decision(event: dict[str, Any], decision: str = "decline") -> bytes:
    """A valid decision record for ``event`` (with one reason code), as workers write it."""
    now = datetime.now(UTC)
    return encode_record(
        Decision(
            event_id=event["event_id"],
            entity_id=event["entity_id"],
            decision=decision,
            score=0.6,
            threshold=0.45,
            reasons=[Reason(code="R12", text="High requested amount", feature="Amount")],
            reason_method="fake",
            model_name="credit_data",
            model_version=1,
            policy_name="credit",
            policy_version="1.1",
            arm="champion",
            shadow=False,
            feature_hash="0" * 64,
            event_time=now,
            decided_at=now,
            latency_ms=1.0,
        )
    )


class FakeBridge:
    """:class:`~workers.api.bridge.Bridge` double.

    ``decider(event) -> Outcome | None`` answers a published event (after ``delay_s``) as the
    workers would; None leaves it pending. ``fail_publish`` makes every publish fail.
    """

    def __init__(
        self,
        decider: Callable[[dict[str, Any]], Outcome | None] | None = None,
        delay_s: float = 0.0,
    ) -> None:
        self.decider = decider
        self.delay_s = delay_s
        self.fail_publish = False
        self.published: list[tuple[bytes, bytes]] = []
        self.readiness_now = Readiness(True, True, True, 0, {"kafka": "ok"})
        self.hub: DecisionHub | None = None
        self.closed = False

    def start(self, hub: DecisionHub) -> None:
        self.hub = hub

    def publish(self, key: bytes, value: bytes) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        if self.fail_publish:
            future.set_exception(PublishError("event not written: brokers down (fake)"))
            return future
        self.published.append((key, value))
        future.set_result(None)
        if self.decider is not None:
            event = json.loads(value)
            outcome = self.decider(event)
            if outcome is not None:
                loop.call_later(self.delay_s, self.emit, event["event_id"], outcome)
        return future

    def emit(self, event_id: str, outcome: Outcome) -> None:
        """Deliver an outcome as the reader would (any thread)."""
        assert self.hub is not None, "start() first"
        if isinstance(outcome, Rejected):
            self.hub.deliver([], [(event_id, outcome)])
        else:
            self.hub.deliver([(event_id, outcome)], [])

    def readiness(self) -> Readiness:
        return self.readiness_now

    def lag(self) -> int | None:
        return self.readiness_now.lag

    def close(self) -> None:
        self.closed = True


class FakeStore:
    """:class:`~workers.api.store.DecisionStore` double over a dict."""

    def __init__(self, decisions: dict[str, bytes] | None = None) -> None:
        self.decisions = dict(decisions or {})
        self.lookups: list[str] = []

    def decision(self, event_id: str) -> bytes | None:
        self.lookups.append(event_id)
        return self.decisions.get(event_id)

    def close(self) -> None:
        pass
