"""The verdict rules of a benchmark result (pure functions over the results dict, no I/O).

Targets (issue 14), each judged on figures of ONE full run:

* confluent, 2 workers: >= 40,000 decisions/s;
* 1 worker >= 70 % of its own client's EOS ceiling (1 process, same transaction size), for
  confluent and for kafka-python;
* p99 latency (event due time -> decision read committed) at 50 % of the 1-worker maximum
  rate of the default client <= max_wait_ms + 50 ms;
* worker RSS growth over the soak < 10 % (first sample after warm-up -> last);
* the engine in process (``process`` + ``records()``, no Kafka) <= 15 µs per event on a batch
  of 500, with reasons for review/decline only (the policy's ``explain_only``).

The default client is reported, not judged: confluent / kafka-python for 1 worker.

Only a full run draws verdicts (met / missed). A quick run (``--quick``) is a smoke run: its
bursts last a fraction of a second, too short to time, so its report and results carry the
measurements and a line saying that no verdict is drawn; so does any warm-up run.
"""

from __future__ import annotations

import math
from typing import Any

from benchmarks.soak import rss_growth

__all__ = [
    "CLIENTS",
    "ENGINE_BATCH",
    "ENGINE_TOTAL",
    "TARGETS",
    "ceiling_rate",
    "ceilings_text",
    "client_choice",
    "client_choice_line",
    "default_client",
    "draws_verdict",
    "evaluate_targets",
    "fmt",
    "no_verdict_line",
    "rate",
    "ratio",
    "verdicts",
    "workers_rate",
]

CLIENTS = ("confluent", "kafka-python")
TARGETS = {
    "confluent_2_workers_rate": 40_000.0,
    "worker_vs_ceiling": 0.70,
    "p99_slack_ms": 50.0,
    "rss_growth": 0.10,
    "engine_us": 15.0,
}
ENGINE_BATCH = 500
ENGINE_TOTAL = "engine total: process + records()"
"""The stage of ``scoring`` rows that times the whole engine (``benchmarks.scoring``)."""


def draws_verdict(res: dict[str, Any]) -> bool:
    """Whether a result may be judged against the targets: only a full run (a result without
    a mode is taken as one); quick and warm-up runs never."""
    return bool(res.get("meta", {}).get("mode", "full") == "full")


def no_verdict_line(res: dict[str, Any]) -> str:
    """What a run that draws no verdict prints instead of the targets table."""
    mode = res.get("meta", {}).get("mode", "?")
    if mode == "quick":
        return (
            "Quick mode is a smoke run: its bursts last a fraction of a second, too short to "
            "time, so it draws no verdict on the targets. Run `make bench` (full mode) for one."
        )
    return f"A {mode} run draws no verdict on the targets; only a full run does."


def ratio(num: float | None, den: float | None) -> float | None:
    """``num / den``; None when either is missing, not finite or ``den`` is zero."""
    if num is None or den is None:
        return None
    if not (math.isfinite(num) and math.isfinite(den)) or den == 0:
        return None
    return num / den


def rate(section: dict[str, Any] | None) -> float | None:
    """The ``rate`` of a result section (None when absent)."""
    if not section or section.get("rate") is None:
        return None
    return float(section["rate"])


def ceiling_rate(res: dict[str, Any], client: str) -> float | None:
    """The EOS ceiling of ``client`` in this run."""
    return rate(res.get("ceiling", {}).get(client))


def workers_rate(res: dict[str, Any], client: str, workers: int) -> float | None:
    """Burst throughput of ``workers`` real workers on ``client`` in this run."""
    return rate(res.get("workers", {}).get(f"{client}_{workers}"))


def default_client(res: dict[str, Any]) -> str:
    """The workers' default client as the run recorded it (confluent when not recorded)."""
    return str(res.get("default_client", "confluent"))


def fmt(value: Any, unit: str = "") -> str:
    """A value for the report: n/a, a share, a ratio, ms, events/s, µs, MiB."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if unit == "ratio":
        return f"{value:.0%}" if abs(value) >= 0.01 else f"{value:.1%}"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "ms":
        return f"{value:.0f} ms"
    if unit == "ms1":
        return f"{value:.1f}"
    if unit == "rate":
        return f"{value:,.0f}"
    if unit == "us":
        return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"
    if unit == "µs":
        return f"{value:,.1f} µs"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def ceilings_text(res: dict[str, Any]) -> str:
    """``EOS ceilings this run: confluent 73,129/s, kafka-python 14,074/s``."""
    parts = [f"{c} {fmt(ceiling_rate(res, c), 'rate')}/s" for c in CLIENTS]
    return "EOS ceilings this run: " + ", ".join(parts)


def _row(
    target: str, value: float | None, bound: str, met: bool | None, unit: str, context: str
) -> dict[str, Any]:
    return {
        "target": target,
        "value": value,
        "bound": bound,
        "met": met,
        "unit": unit,
        "context": context,
    }


def _at_least(value: float | None, floor: float) -> bool | None:
    return None if value is None else value >= floor


def _throughput_rows(res: dict[str, Any]) -> list[dict[str, Any]]:
    w2 = workers_rate(res, "confluent", 2)
    floor = TARGETS["confluent_2_workers_rate"]
    rows = [
        _row(
            "confluent, 2 workers: decisions/s",
            w2,
            f">= {floor:,.0f}/s",
            _at_least(w2, floor),
            "rate",
            ceilings_text(res),
        )
    ]
    share = TARGETS["worker_vs_ceiling"]
    for client in CLIENTS:
        w1, ceil = workers_rate(res, client, 1), ceiling_rate(res, client)
        r = ratio(w1, ceil)
        ctx = f"1 worker {fmt(w1, 'rate')}/s vs {client} EOS ceiling {fmt(ceil, 'rate')}/s"
        target = f"{client}, 1 worker / {client} EOS ceiling"
        rows.append(_row(target, r, f">= {share:.0%}", _at_least(r, share), "ratio", ctx))
    return rows


def _latency_row(res: dict[str, Any]) -> dict[str, Any]:
    lat = res.get("latency") or {}
    client = lat.get("client", default_client(res))
    point = next((p for p in lat.get("points", []) if p.get("load_pct") == 50), None)
    target = f"p99 latency at 50 % of the 1-worker max rate ({client})"
    slack = TARGETS["p99_slack_ms"]
    if point is None:
        return _row(target, None, f"<= max_wait_ms + {slack:.0f} ms", None, "ms", "not measured")
    budget = float(lat.get("max_wait_ms", 50)) + slack
    p99 = point.get("p99")
    if p99 is None or not math.isfinite(p99):
        p99 = None
    ctx = (
        f"p50 {fmt(point.get('p50'), 'ms')} at {fmt(point.get('target_rate'), 'rate')}/s = "
        f"50 % of {fmt(lat.get('max_rate'), 'rate')}/s (1 worker, {client}); "
        f"{ceilings_text(res)}"
    )
    met = None if p99 is None else p99 <= budget
    return _row(target, p99, f"<= {budget:.0f} ms", met, "ms", ctx)


def _soak_rows(res: dict[str, Any]) -> list[dict[str, Any]]:
    soak = res.get("soak") or {}
    samples = soak.get("samples", [])
    workers = max((len(s.get("rss_mib", ())) for s in samples), default=1)
    bound = TARGETS["rss_growth"]
    rows = []
    for i in range(workers):
        growth = rss_growth(samples, i)
        ctx = "not measured"
        if growth is not None:
            first, last = samples[0]["rss_mib"][i], samples[-1]["rss_mib"][i]
            ctx = (
                f"{first:.0f} -> {last:.0f} MiB over {fmt(soak.get('seconds'), 'rate')} s at "
                f"{fmt(soak.get('achieved_rate'), 'rate')}/s ({soak.get('client', '?')})"
            )
        name = "worker RSS growth over the soak" + (f" (worker {i + 1})" if workers > 1 else "")
        met = None if growth is None else growth < bound
        rows.append(_row(name, growth, f"< {bound:.0%}", met, "ratio", ctx))
    return rows


def _engine_row(res: dict[str, Any]) -> dict[str, Any]:
    sc = res.get("scoring") or {}
    row = next((r for r in sc.get("rows", []) if r.get("batch") == ENGINE_BATCH), {})
    seconds = row.get("seconds", {})
    bound = TARGETS["engine_us"]
    target = f"engine in process, µs per event (batch {ENGINE_BATCH})"
    if seconds.get(ENGINE_TOTAL) is None:
        return _row(target, None, f"<= {bound:.0f} µs", None, "µs", "not measured")
    us = float(seconds[ENGINE_TOTAL]) / ENGINE_BATCH * 1e6
    device = (sc.get("device") or {}).get("device", "?")
    rounds, reasons = sc.get("rounds", 1), sc.get("reasons", "?")
    ctx = (
        f"{sc.get('family', '?')} on {device}, no Kafka, claims in Redis; reasons: {reasons}; "
        f"median of {rounds} round{'s' if rounds != 1 else ''}"
    )
    return _row(target, us, f"<= {bound:.0f} µs", us <= bound, "µs", ctx)


def evaluate_targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per target: what was compared, the measured value, the bound, whether met and
    the figures beside it. ``met`` is None when an input is missing."""
    return [*_throughput_rows(res), _latency_row(res), *_soak_rows(res), _engine_row(res)]


def verdicts(res: dict[str, Any]) -> list[dict[str, Any]]:
    """:func:`evaluate_targets` for a run that draws verdicts, else nothing."""
    return evaluate_targets(res) if draws_verdict(res) else []


def client_choice(res: dict[str, Any]) -> dict[str, Any]:
    """The default client against this run: confluent / kafka-python for 1 worker, which one
    is faster, and whether that is the workers' default (None when not measured)."""
    r = ratio(workers_rate(res, "confluent", 1), workers_rate(res, "kafka-python", 1))
    faster = None if r is None else ("confluent" if r >= 1.0 else "kafka-python")
    default = default_client(res)
    return {
        "default": default,
        "confluent_over_kafka_python": r,
        "faster": faster,
        "supports_default": None if faster is None else faster == default,
    }


def client_choice_line(res: dict[str, Any]) -> str:
    """One sentence on the default client; a run without verdicts only states the ratio."""
    choice = client_choice(res)
    r = choice["confluent_over_kafka_python"]
    head = (
        f"Default client: `{choice['default']}` (the workers' default). 1 worker, "
        f"confluent {fmt(workers_rate(res, 'confluent', 1), 'rate')}/s vs kafka-python "
        f"{fmt(workers_rate(res, 'kafka-python', 1), 'rate')}/s: confluent / kafka-python = "
        f"{fmt(r, 'x')}."
    )
    if r is None or not draws_verdict(res):
        return head
    verdict = "supports" if choice["supports_default"] else "**contradicts**"
    return f"{head} This run {verdict} that default ({choice['faster']} is faster)."
