"""The ``api`` phase: latency of ``POST /v1/decisions`` at stated request rates.

One real worker (``decisionflow worker``, the default client) and the API (``decisionflow
serve``, its own process, real Kafka bridge, the champion's spec) on the phase's topics. After
the phase's Kafka warm-up (200 events) and once ``/readyz`` answers 200, the API is warmed with
``WARM`` requests, then for each rate in ``sizes["api_rates"]`` an open loop (one asyncio httpx
client) sends ``rate * api_s`` POSTs with fresh event ids, request ``i`` due at
``t0 + i / rate`` whatever the answers do. Latency = response received - due time, over the
200 answers (a client or server falling behind is charged); 202s (the wait of ``API_WAIT_S``
ran out) and errors are counted apart. The API never decides: each 200 is the worker's decision
read back from the decisions topic, so the figure is publish -> worker batch -> transaction
commit -> read_committed reader -> HTTP response.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from typing import TYPE_CHECKING, Any

from benchmarks.targets import fmt

if TYPE_CHECKING:  # the report imports this module: keep its imports light
    from benchmarks.bench import Bench
    from benchmarks.harness import Child, OutputReader
    from workers.settings import Topics

__all__ = ["API_WAIT_S", "api_section", "open_loop", "run_api_phase"]

API_WAIT_S = 5.0
WARM = 50


def _wait_ready(url: str, children: list[Child], timeout: float = 120.0) -> float:
    """Wait until ``/readyz`` answers 200; returns the seconds it took."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        for c in children:
            c.check()
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=5) as resp:
                if resp.status == 200:
                    return time.monotonic() - t0
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url}/readyz not 200 in {timeout:.0f}s")


async def _open_loop(
    url: str, key: str, bodies: list[bytes], rate: float
) -> tuple[list[tuple[int, float]], float]:
    import httpx

    # a small pool: httpcore scans every connection per request, which ate the client's CPU
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(
        base_url=url, headers=headers, timeout=API_WAIT_S + 30, limits=limits
    ) as client:
        loop = asyncio.get_running_loop()
        t0 = loop.time() + 0.1
        starts: list[float] = []

        async def one(i: int, body: bytes) -> tuple[int, float]:
            due = t0 + i / rate
            await asyncio.sleep(max(0.0, due - loop.time()))
            starts.append(loop.time())
            try:
                status = (await client.post("/v1/decisions", content=body)).status_code
            except httpx.HTTPError:
                status = 0
            return status, (loop.time() - due) * 1000.0

        results = await asyncio.gather(*(one(i, b) for i, b in enumerate(bodies)))
    span = max(starts) - min(starts) if len(starts) > 1 else 0.0
    return list(results), (len(starts) - 1) / span if span > 0 else float("nan")


def open_loop(url: str, key: str, bodies: list[bytes], rate: float) -> dict[str, Any]:
    """POST ``bodies`` at ``rate`` per second (open loop); p50/p99 of the 200s, in ms."""
    from benchmarks.harness import percentiles

    results, achieved = asyncio.run(_open_loop(url, key, bodies, rate))
    ok = [ms for status, ms in results if status == 200]
    statuses = Counter(status for status, _ in results)
    return {
        "target_rate": rate,
        "achieved_rate": achieved,
        "requests": len(results),
        "ok": statuses.get(200, 0),
        "pending": statuses.get(202, 0),
        "errors": sum(n for s, n in statuses.items() if s not in (200, 202)),
        **percentiles(ok, (50, 99)),
        "max": max(ok) if ok else float("nan"),
    }


def run_api_phase(bench: Bench) -> None:
    """The phase (``Bench.api``): 1 worker + the API, then the open loops; ``res["api"]``."""
    from benchmarks.phase import BASE_BATCH, BASE_WAIT_MS
    from devtools.launch import free_port

    key = secrets.token_urlsafe(24)
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    def start(topics: Topics, group: str) -> list[Child]:
        env = bench._worker_env(topics, group, bench.default)
        worker = bench.run.start_worker(f"{group}-w1", env)
        api_env = {
            **env,
            "DECISIONFLOW_API__KEYS": json.dumps({"bench": key}),
            "DECISIONFLOW_API__PORT": str(port),
            "DECISIONFLOW_API__RATE_PER_S": "0",
            "DECISIONFLOW_API__WAIT_S": str(API_WAIT_S),
            "DECISIONFLOW_API__MAX_WAITERS": "100000",
            "DECISIONFLOW_DATABASE_URL": "",  # answers come from Kafka only
        }
        api = bench.run.start(f"{group}-api", [sys.executable, "-m", "workers.cli", "serve"],
                              api_env)  # fmt: skip
        return [worker, api]

    def after(
        topics: Topics, reader: OutputReader, children: list[Child], _rate: float | None
    ) -> None:
        ready_s = _wait_ready(url, children)
        bodies = [v for _, v in bench.src.make("api-warm-", WARM)]
        warm = open_loop(url, key, bodies, rate=20.0)
        points = []
        for rate in bench.sizes["api_rates"]:
            n = max(int(rate * bench.sizes["api_s"]), 20)
            bodies = [v for _, v in bench.src.make(f"api{rate:g}-", n)]
            print(f"[bench] api: {n} POSTs at {rate:g}/s", flush=True)
            points.append(open_loop(url, key, bodies, float(rate)))
            for c in children:
                c.check()
        bench.res["api"] = {
            "client": bench.default,
            "wait_s": API_WAIT_S,
            "ready_seconds": round(ready_s, 1),
            "warm_ok": warm["ok"],
            "config": f"1 worker ({bench.default}, max_batch {BASE_BATCH}, max_wait "
            f"{BASE_WAIT_MS} ms, transaction_max_events {bench.txn}), 1 API process, one "
            "asyncio httpx client on the same host",
            "points": points,
        }

    print("[bench] api (POST /v1/decisions latency)", flush=True)
    bench._phase("api", start, 1, 0, after)


def api_section(res: dict[str, Any]) -> list[str]:
    """The report's Markdown lines for ``res["api"]`` (none when the phase did not run)."""
    api = res.get("api") or {}
    points = api.get("points", [])
    if not points:
        return []
    lines = ["", "### HTTP API: POST /v1/decisions latency", ""]
    lines += [
        f"Open-loop HTTP client at stated request rates ({api.get('config', '')}); latency = "
        f"response received - the request's scheduled time, over the 200 answers (the API "
        f"waits up to {fmt(api.get('wait_s'))} s, then answers 202).",
        "",
        "| requests/s | achieved | requests | 200 | 202 | errors | p50 | p99 | max |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in points:
        cells = [
            fmt(p.get("target_rate"), "rate"), fmt(p.get("achieved_rate"), "rate"),
            str(p.get("requests", "")), str(p.get("ok", "")), str(p.get("pending", "")),
            str(p.get("errors", "")), fmt(p.get("p50"), "ms"), fmt(p.get("p99"), "ms"),
            fmt(p.get("max"), "ms"),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return lines
