"""A small Python client of the HTTP decision API (``decisionflow serve``, docs/api.md).

    from workers.client import DecisionClient, Pending
    from workers.producer import event_payload

    with DecisionClient("http://127.0.0.1:18000", api_key="...") as client:
        result = client.decide(event_payload("app-1", {"Amount": 1200, "Home": "rent"}))
        decision = client.wait(result) if isinstance(result, Pending) else result
        print(decision["decision"], [r["code"] for r in decision["reasons"]])

Uses httpx (connection reuse) when it is installed, else the standard library's urllib.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import quote

__all__ = ["ApiError", "DecisionClient", "InvalidEventError", "Pending"]


@dataclass(frozen=True)
class Pending:
    """The event is published but not decided yet: poll :meth:`DecisionClient.get` or
    :meth:`DecisionClient.wait` with it."""

    event_id: str
    location: str


class ApiError(Exception):
    """A response other than a decision or pending (401, 413, 429, 503...)."""

    def __init__(self, status: int, detail: Any, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail
        self.retry_after = retry_after


class InvalidEventError(ApiError):
    """422: the event breaks the contract (``source`` api) or a worker dead-lettered it
    (``source`` worker); ``reason`` and ``message`` are the contract error's."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(status, detail)
        info = detail if isinstance(detail, dict) else {}
        self.reason: str | None = info.get("reason")
        self.stage: str | None = info.get("stage")
        self.message: str | None = info.get("message")
        self.source: str | None = info.get("source")


@dataclass
class _Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class _Urllib:
    """Requests through urllib (no dependency)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    def send(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> _Response:
        req = urllib.request.Request(url, data=body, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return _Response(resp.status, {k.lower(): v for k, v in resp.headers.items()},
                                 resp.read())  # fmt: skip
        except urllib.error.HTTPError as err:
            return _Response(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())

    def close(self) -> None:
        pass


class _Httpx:
    """Requests through one httpx client (keeps connections open)."""

    def __init__(self, timeout: float) -> None:
        import httpx

        self._client = httpx.Client(timeout=timeout)

    def send(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> _Response:
        resp = self._client.request(method, url, headers=headers, content=body)
        return _Response(resp.status_code, {k.lower(): v for k, v in resp.headers.items()},
                         resp.content)  # fmt: skip

    def close(self) -> None:
        self._client.close()


class DecisionClient:
    """Client of ``POST /v1/decisions`` and ``GET /v1/decisions/{event_id}``.

    ``api_key`` goes in ``Authorization: Bearer``; ``timeout`` is per HTTP request and must
    exceed the server's wait. ``use_httpx`` None: httpx when installed.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 35.0,
        use_httpx: bool | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Accept": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        if use_httpx is None:
            try:
                import httpx  # noqa: F401

                use_httpx = True
            except ImportError:
                use_httpx = False
        self._http: _Httpx | _Urllib = _Httpx(timeout) if use_httpx else _Urllib(timeout)

    def decide(
        self, event: Mapping[str, Any] | bytes, *, wait: float | None = None
    ) -> dict[str, Any] | Pending:
        """POST one event: its decision (a dict, reason codes included) or :class:`Pending`.

        ``wait`` overrides the server's wait in seconds. Raises :class:`InvalidEventError`
        (422) or :class:`ApiError`.
        """
        body = event if isinstance(event, bytes) else json.dumps(event, allow_nan=False).encode()
        path = "/v1/decisions" + ("" if wait is None else f"?wait={wait:g}")
        headers = {**self._headers, "Content-Type": "application/json"}
        resp = self._http.send("POST", self.base_url + path, headers, body)
        if resp.status == 202:
            info = resp.json()
            return Pending(info["event_id"], resp.headers.get("location", info["location"]))
        return self._decision(resp)

    def get(self, event_id: str | Pending) -> dict[str, Any] | None:
        """The decision on ``event_id``, or None while it is pending (or unknown)."""
        if isinstance(event_id, Pending):
            url = self.base_url + event_id.location
        else:
            url = f"{self.base_url}/v1/decisions/{quote(event_id, safe='')}"
        resp = self._http.send("GET", url, self._headers, None)
        return None if resp.status == 404 else self._decision(resp)

    def wait(
        self, event_id: str | Pending, timeout: float = 30.0, interval: float = 0.25
    ) -> dict[str, Any]:
        """Poll :meth:`get` until the decision is there; TimeoutError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            decision = self.get(event_id)
            if decision is not None:
                return decision
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no decision on {event_id} within {timeout:g}s")
            time.sleep(interval)

    @staticmethod
    def _decision(resp: _Response) -> dict[str, Any]:
        if resp.status == 200:
            decision: dict[str, Any] = resp.json()
            return decision
        try:
            detail = (resp.json() or {}).get("detail")
        except (ValueError, AttributeError):
            detail = resp.body[:500].decode(errors="replace")
        if resp.status == 422:
            raise InvalidEventError(resp.status, detail)
        retry = resp.headers.get("retry-after")
        raise ApiError(resp.status, detail, float(retry) if retry else None)

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> DecisionClient:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()
