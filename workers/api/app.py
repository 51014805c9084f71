"""The FastAPI app of ``decisionflow serve``: request/reply decisions beside the stream.

``POST /v1/decisions`` checks the caller's key and rate, the body's size and the event
(the workers' own validation), returns a decision already known for its ``event_id`` (recent
index, then store) without publishing again, else publishes the event (key = entity id, as
``decisionflow produce``) and waits for its decision, at most ``wait`` seconds: 200 with the
decision, 202 with a ``Location`` to poll, 422 when a worker dead-lettered it. The API never
scores or decides: every decision comes from the workers through the decisions topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Security
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from decisioning.contracts import Decision, Event, EventError
from workers.api.auth import ANONYMOUS, ApiKeys, RateLimiter
from workers.api.bridge import Bridge, PublishError
from workers.api.events import ChampionSpec, EventValidator, describe
from workers.api.metrics import ApiMetrics, MetricsMiddleware
from workers.api.store import DecisionStore
from workers.api.waiters import DecisionHub, Outcome, Rejected, TooManyWaitersError
from workers.settings import ApiSettings

__all__ = ["NO_KEYS", "ApiState", "NoApiKeysError", "build_app", "create_app"]

log = logging.getLogger(__name__)
DECISIONS = "/v1/decisions"
SOURCE_HEADER = "X-Decisionflow-Source"
"""Where a 200's decision came from: ``new`` (awaited), ``recent`` (index) or ``store``."""


NO_KEYS = (
    "no API key configured: set DECISIONFLOW_API__KEYS (a JSON object name -> key), "
    "or pass --insecure-no-auth for local development"
)


class NoApiKeysError(ValueError):
    """No API key is configured and ``insecure_no_auth`` was not asked for."""


# ------------------------------------------------------------------------ documented bodies


class Pending(BaseModel):
    """202: the event is published; its decision is not made yet."""

    event_id: str
    status: str = "pending"
    location: str


class Problem(BaseModel):
    """Why an event was refused (422): the contract error's reason, stage and message.

    ``source`` is ``api`` when the API refused it, ``worker`` when a worker dead-lettered it.
    """

    reason: str
    stage: str
    message: str
    source: str


class ProblemBody(BaseModel):
    """The body of a 422."""

    detail: Problem


@dataclass
class ApiState:
    """Everything the routes use (``app.state.api``)."""

    settings: ApiSettings
    keys: ApiKeys
    limiter: RateLimiter
    hub: DecisionHub
    bridge: Bridge
    validator: EventValidator
    store: DecisionStore | None
    spec_source: ChampionSpec | None
    metrics: ApiMetrics
    insecure: bool


# ------------------------------------------------------------------------ helpers


def _state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <API key>`")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: <key>`")


async def authorized(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    x_api_key: Annotated[str | None, Security(_api_key)],
) -> str:
    """The caller's key name; 401 without a valid key, 429 past its rate limit."""
    state = _state(request)
    if state.insecure:
        name: str | None = ANONYMOUS
    else:
        name = state.keys.identify(x_api_key or (bearer.credentials if bearer else None))
    if name is None:
        raise HTTPException(401, "missing or invalid API key", {"WWW-Authenticate": "Bearer"})
    retry = state.limiter.retry_after(name)
    if retry:
        raise HTTPException(
            429,
            f"rate limit of {state.limiter.rate:g} requests/s exceeded",
            {"Retry-After": str(retry)},
        )
    return name


Caller = Annotated[str, Depends(authorized)]


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body of {declared} bytes exceeds the limit of {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _decision(value: bytes, source: str) -> Response:
    return Response(value, 200, {SOURCE_HEADER: source}, media_type="application/json")


def _rejected(outcome: Rejected) -> JSONResponse:
    problem = Problem(
        reason=outcome.reason, stage=outcome.stage, message=outcome.message, source="worker"
    )
    return JSONResponse({"detail": problem.model_dump()}, 422)


def _outcome(outcome: Outcome, source: str) -> Response:
    return _rejected(outcome) if isinstance(outcome, Rejected) else _decision(outcome, source)


def _location(request: Request, event_id: str) -> str:
    return f"{request.scope.get('root_path', '')}{DECISIONS}/{quote(event_id, safe='')}"


async def _stored(state: ApiState, event_id: str) -> bytes | None:
    if state.store is None:
        return None
    found = await run_in_threadpool(state.store.decision, event_id)
    if found is not None:
        state.hub.remember(event_id, found)
    return found


# ------------------------------------------------------------------------ routes

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": Decision, "description": "The decision (the workers' record)."},
    202: {"model": Pending, "description": "Published; poll the Location for the decision."},
    401: {"description": "Missing or invalid API key."},
    413: {"description": "Body larger than the workers' message limit."},
    422: {"model": ProblemBody, "description": "The event breaks the contract."},
    429: {"description": "Rate limit of this key exceeded (see Retry-After)."},
    503: {"description": "The event could not be published, or too many requests wait."},
}


async def post_decision(
    request: Request,
    caller: Caller,
    wait: Annotated[
        float | None,
        Query(
            ge=0,
            description="Seconds to wait for the decision (default: api.wait_s; "
            "capped at api.max_wait_s).",
        ),
    ] = None,
) -> Response:
    """Decide one event: publish it to the events topic and wait for its decision.

    The same ``event_id`` twice yields the same single decision: a decision already known
    (recent decisions, then the store) is returned without publishing again, and an event
    this process published and still waits for is not published again.
    """
    state = _state(request)
    loop = asyncio.get_running_loop()
    api = state.settings.api
    deadline = loop.time() + min(api.wait_s if wait is None else wait, api.max_wait_s)
    raw = await read_body(request, state.settings.max_message_bytes)
    try:
        accepted = state.validator.check(raw)
    except EventError as exc:
        return JSONResponse({"detail": describe(exc)}, 422)
    event_id, hub = accepted.event_id, state.hub
    if (known := hub.decision(event_id)) is not None:
        state.metrics.known.labels("recent").inc()
        return _decision(known, "recent")
    if (stored := await _stored(state, event_id)) is not None:
        state.metrics.known.labels("store").inc()
        return _decision(stored, "store")
    try:
        future = hub.subscribe(event_id)
    except TooManyWaitersError as exc:
        return JSONResponse({"detail": str(exc)}, 503, {"Retry-After": "1"})
    try:
        if hub.claim(event_id):
            try:
                key = accepted.entity_id.encode("utf-8", "surrogatepass")
                acked = state.bridge.publish(key, raw)
                await asyncio.wait_for(acked, api.publish_timeout_s)
            except (PublishError, TimeoutError) as exc:
                hub.release(event_id)
                log.warning("event %s not published: %s", event_id, exc)
                return JSONResponse({"detail": f"event not published: {exc}"}, 503)
            state.metrics.published.inc()
        await asyncio.wait({future}, timeout=max(0.0, deadline - loop.time()))
    finally:
        if not future.done():
            hub.unsubscribe(event_id, future)
    if future.cancelled():
        state.metrics.timeouts.inc()
        location = _location(request, event_id)
        pending = Pending(event_id=event_id, location=location)
        return JSONResponse(pending.model_dump(), 202, {"Location": location, "Retry-After": "1"})
    return _outcome(future.result(), "new")


async def get_decision(request: Request, event_id: str, caller: Caller) -> Response:
    """The decision on ``event_id`` once made (recent decisions, else the store); 404 while
    pending or unknown, 422 when a worker dead-lettered the event."""
    state = _state(request)
    if (known := state.hub.outcome(event_id)) is not None:
        return _outcome(known, "recent")
    if (stored := await _stored(state, event_id)) is not None:
        return _decision(stored, "store")
    pending = state.hub.is_pending(event_id)
    body = {"detail": {"event_id": event_id, "status": "pending" if pending else "unknown"}}
    return JSONResponse(body, 404, {"Retry-After": "1"} if pending else None)


async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


async def readyz(request: Request) -> JSONResponse:
    """Kafka reachable, the decisions reader assigned and caught up: 200, else 503."""
    r = await run_in_threadpool(_state(request).bridge.readiness)
    body = {"ready": r.ready, "kafka": r.kafka, "assigned": r.assigned,
            "caught_up": r.caught_up, "lag": r.lag, "detail": r.detail}  # fmt: skip
    return JSONResponse(body, 200 if r.ready else 503)


async def metrics(request: Request) -> Response:
    """Prometheus exposition of the API's metrics."""
    return Response(_state(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)


# ------------------------------------------------------------------------ the app


async def _refresh_spec(state: ApiState, source: ChampionSpec) -> None:
    """Re-read the champion's spec whenever its alias moves (workers swap models too)."""
    while True:
        await asyncio.sleep(state.settings.api.spec_refresh_s)
        try:
            if await run_in_threadpool(source.moved):
                state.validator.use(await run_in_threadpool(source.load))
                log.info("checking features against champion v%s's spec now", source.version)
        except Exception as exc:  # keep the last spec; try again next time
            log.warning("could not re-read the champion's spec: %s", exc)


def create_app(
    settings: ApiSettings,
    bridge: Bridge,
    validator: EventValidator,
    *,
    store: DecisionStore | None = None,
    spec_source: ChampionSpec | None = None,
    insecure_no_auth: bool = False,
) -> FastAPI:
    """The app over these parts (real or doubles); the bridge starts with the app.

    Raises :class:`NoApiKeysError` when no key is configured unless ``insecure_no_auth``.
    """
    keys = ApiKeys(settings.api.keys)
    if not keys and not insecure_no_auth:
        raise NoApiKeysError(NO_KEYS)
    hub = DecisionHub(settings.api.recent_decisions, settings.api.max_waiters)
    state = ApiState(
        settings=settings,
        keys=keys,
        limiter=RateLimiter(settings.api.rate_per_s, settings.api.burst),
        hub=hub,
        bridge=bridge,
        validator=validator,
        store=store,
        spec_source=spec_source,
        metrics=ApiMetrics(),
        insecure=insecure_no_auth,
    )
    state.metrics.track(lambda: hub.waiting, lambda: len(hub.decisions), bridge.lag)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        hub.bind(asyncio.get_running_loop())
        await run_in_threadpool(bridge.start, hub)
        refresher = asyncio.create_task(_refresh_spec(state, spec_source)) if spec_source else None
        log.info("decision API up: %s", "NO AUTH (insecure)" if state.insecure else
                 f"{len(settings.api.keys)} API keys: {sorted(settings.api.keys)}")  # fmt: skip
        try:
            yield
        finally:
            if refresher is not None:
                refresher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await refresher
            hub.cancel_all()
            await run_in_threadpool(bridge.close)
            if store is not None:
                store.close()

    app = FastAPI(
        title="decisionflow decision API",
        version="1",
        summary="Request/reply decisions beside the stream: publish an event, get its decision.",
        lifespan=lifespan,
    )
    app.state.api = state
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    app.add_api_route(
        DECISIONS, post_decision, methods=["POST"], responses=_RESPONSES,
        response_class=Response, tags=["decisions"],
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/json": {"schema": Event.model_json_schema()}}}},
    )  # fmt: skip
    app.add_api_route(
        DECISIONS + "/{event_id:path}", get_decision, methods=["GET"], name="get_decision",
        response_class=Response, tags=["decisions"],
        responses={200: _RESPONSES[200], 401: _RESPONSES[401], 404: {
            "description": "Not decided yet (pending) or unknown."}, 422: _RESPONSES[422]},
    )  # fmt: skip
    app.add_api_route("/healthz", healthz, methods=["GET"], tags=["operations"])
    app.add_api_route("/readyz", readyz, methods=["GET"], tags=["operations"])
    app.add_api_route("/metrics", metrics, methods=["GET"], include_in_schema=False)
    return app


def build_app(settings: ApiSettings, *, insecure_no_auth: bool = False) -> FastAPI:
    """The production app: Kafka bridge, the workers' validation with the configured feature
    spec, the store when ``database_url`` is set. Loads the spec now (fails fast)."""
    from workers.api.bridge import KafkaBridge
    from workers.api.events import spec_for
    from workers.api.store import StoreLookup

    spec, source = spec_for(settings.api.feature_spec, settings.registry_url, settings.model_name)
    store = StoreLookup(settings.database_url.get_secret_value()) if settings.database_url else None
    return create_app(
        settings,
        KafkaBridge(settings),
        EventValidator(settings.max_message_bytes, spec),
        store=store,
        spec_source=source,
        insecure_no_auth=insecure_no_auth,
    )
