"""Prometheus metrics of the HTTP API, on their own registry (served at ``/metrics``)."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ApiMetrics", "MetricsMiddleware"]


class ApiMetrics:
    """One set per app (so tests can build many apps in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "decisionflow_api_requests", "HTTP requests by route, method and status.",
            ["route", "method", "status"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "decisionflow_api_request_seconds", "HTTP request latency by route.", ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 2.5, 5, 10, 30),
            registry=r,
        )  # fmt: skip
        self.waiters = Gauge(
            "decisionflow_api_waiters", "Requests waiting for their decision now.", registry=r
        )
        self.timeouts = Counter(
            "decisionflow_api_wait_timeouts",
            "POSTs answered 202 because the decision took longer than the wait.", registry=r,
        )  # fmt: skip
        self.published = Counter(
            "decisionflow_api_events_published", "Events the API published.", registry=r
        )
        self.known = Counter(
            "decisionflow_api_known_decisions",
            "POSTs answered with a decision already made, by where it was found "
            "(recent: the in-memory index, store: the database).", ["source"], registry=r,
        )  # fmt: skip
        self.recent = Gauge(
            "decisionflow_api_recent_decisions", "Decisions in the in-memory index.", registry=r
        )
        self.lag = Gauge(
            "decisionflow_api_reader_lag_records",
            "Committed decisions not yet read by the API's reader.", registry=r,
        )  # fmt: skip

    def track(self, waiting: Callable[[], int], recent: Callable[[], int],
              lag: Callable[[], int | None]) -> None:  # fmt: skip
        """Read the gauges from these functions at each scrape."""
        self.waiters.set_function(lambda: float(waiting()))
        self.recent.set_function(lambda: float(recent()))
        self.lag.set_function(lambda: float(lag() or 0))

    def render(self) -> bytes:
        """The exposition text."""
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts and times every HTTP request by its route template (bounded labels)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)
