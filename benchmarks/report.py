"""The Markdown report of a benchmark result (pure functions, no I/O).

A result is the JSON object ``benchmarks.run`` writes; every section is optional so a partial
run (``--only``) still renders. The verdict rules live in :mod:`benchmarks.targets` (their
public names are re-exported here); only a full run prints verdicts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from benchmarks.api import api_section
from benchmarks.profile import stage_seconds
from benchmarks.runtimes import runtimes_section
from benchmarks.targets import (
    TARGETS,
    ceiling_rate,
    ceilings_text,
    client_choice,
    client_choice_line,
    draws_verdict,
    evaluate_targets,
    fmt,
    no_verdict_line,
    rate,
    ratio,
    verdicts,
)

__all__ = [
    "TARGETS",
    "client_choice",
    "draws_verdict",
    "evaluate_targets",
    "markdown",
    "no_verdict_line",
    "per_event_us",
    "ratio",
    "stage_grid",
    "verdicts",
]


def per_event_us(seconds: Mapping[str, float], events: float) -> dict[str, float]:
    """``{stage: µs per event}`` from ``{stage: seconds}`` spent on ``events`` events."""
    if events <= 0:
        return {}
    return {k: v / events * 1e6 for k, v in seconds.items()}


def stage_grid(columns: Sequence[Mapping[str, float]], unit: str = "us") -> list[list[str]]:
    """Rows ``[stage, one cell per column]`` over the union of the columns' stages, in
    first-seen order: generic over whatever stages an engine reports (blank: not in that
    column)."""
    stages: list[str] = []
    for col in columns:
        stages += [s for s in col if s not in stages]
    return [[s, *(fmt(col[s], unit) if s in col else "" for col in columns)] for s in stages]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _met(met: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "not measured"}[met]


def _head(res: dict[str, Any]) -> list[str]:
    meta = res.get("meta", {})
    lines = ["## Results", ""]
    if meta:
        lines += [
            f"- date: {meta.get('date', '?')}",
            f"- machine: {meta.get('machine', '?')}",
            f"- command: `{meta.get('command', '?')}` (mode: {meta.get('mode', '?')})",
            f"- load average before / after: {meta.get('uptime_before', '?')} / "
            f"{meta.get('uptime_after', '?')}",
            f"- sizes: {meta.get('sizes', {})}",
            f"- wall time: {meta.get('wall_seconds', '?')} s",
        ]
        warm = res.get("broker_warmup")
        if warm and warm.get("rate"):
            lines.append(
                f"- broker warm-up before the first phase (untimed, not a result): "
                f"{warm['events']} events at {warm['rate']:,.0f}/s"
            )
        lines.append("")
    lines += ["### Targets", ""]
    if draws_verdict(res):
        lines += _table(
            ["target", "measured", "bound", "beside it (this run)", "verdict"],
            [
                [r["target"], fmt(r["value"], r["unit"]), r["bound"], r["context"], _met(r["met"])]
                for r in verdicts(res)
            ],
        )
    else:
        lines += [no_verdict_line(res)]
    lines += ["", client_choice_line(res), ""]
    if errors := res.get("errors"):
        lines += [f"- phase `{k}` failed: {v}" for k, v in errors.items()] + [""]
    return lines


def _throughput(res: dict[str, Any]) -> list[str]:
    lines = ["### Throughput (events in -> committed decisions)", "", ceilings_text(res) + ".", ""]
    rows = []
    for group in ("ceiling", "workers"):
        for key, item in res.get(group, {}).items():
            client = item.get("client", "")
            own = ceiling_rate(res, client)
            rows.append(
                [
                    item.get("label", f"{group}: {key}"),
                    str(item.get("events", "")),
                    fmt(item.get("seconds")),
                    fmt(rate(item), "rate"),
                    fmt(own, "rate"),
                    fmt(ratio(rate(item), own), "ratio"),
                ]
            )
    if p := res.get("peer"):
        rows.append(
            [
                p.get("label", "per-event Celery peer"),
                str(p.get("events", "")),
                fmt(p.get("seconds")),
                fmt(rate(p), "rate"),
                "",
                "",
            ]
        )
    header = ["configuration", "events", "s", "events/s", "own-client EOS ceiling", "share"]
    return [*lines, *_table(header, rows)]


CPU_GROUPS = ("workers", "load generator + reader", "broker", "redis", "postgres", "other")


def _cpu(res: dict[str, Any]) -> list[str]:
    """Per burst: CPU µs per event of each process group, and the cores the host had busy."""
    rows = []
    for group in ("ceiling", "workers"):
        for key, item in res.get(group, {}).items():
            cpu = item.get("cpu")
            if not cpu:
                continue
            us = cpu.get("us_per_event", {})
            total = sum(us.values())
            rows.append(
                [
                    item.get("label", f"{group}: {key}"),
                    *(fmt(us.get(g), "us") for g in CPU_GROUPS),
                    fmt(total, "us"),
                    f"{cpu.get('host_cores_busy', 0):.2f} of {cpu.get('host_cores', '?')}",
                ]
            )
    if not rows:
        return []
    lines = [
        "",
        "### Where the host's CPU went during each burst (µs of CPU per event)",
        "",
        "CPU time (user + system, psutil) of each process group from the send start to the "
        "last committed output, over the events of the burst. `load generator + reader` is the "
        "benchmark process; `workers` is the ceiling's loop in the ceiling rows; `other` is "
        "the host's busy time no group accounts for. At 2 cores, a host fully busy has "
        "2,000,000 / rate µs per event to give.",
        "",
    ]
    header = ["configuration", *CPU_GROUPS, "total", "cores busy"]
    return [*lines, *_table(header, rows)]


def _latency(res: dict[str, Any]) -> list[str]:
    lat = res.get("latency") or {}
    points = lat.get("points", [])
    if not points:
        return []
    lines = ["", f"### Latency by load (1 worker, {lat.get('client', '?')})", ""]
    lines += [
        f"Open-loop producer at a share of the measured 1-worker maximum "
        f"{fmt(lat.get('max_rate'), 'rate')} events/s ({lat.get('config', '')}); latency = "
        f"decision read by a read_committed consumer - the event's scheduled send time. "
        f"{ceilings_text(res)}.",
        "",
    ]
    lines += _table(
        ["load", "target events/s", "achieved", "events", "p50", "p99", "max"],
        [
            [
                f"{p.get('load_pct')} %",
                fmt(p.get("target_rate"), "rate"),
                fmt(p.get("achieved_rate"), "rate"),
                str(p.get("events", "")),
                fmt(p.get("p50"), "ms"),
                fmt(p.get("p99"), "ms"),
                fmt(p.get("max"), "ms"),
            ]
            for p in points
        ],
    )
    with_stages = [p for p in points if p.get("stages")]
    if with_stages:
        lines += ["", "Where a batch's time goes (worker stage histogram, mean ms per batch):", ""]
        cols = [{s["stage"]: s["mean_ms"] for s in p["stages"]} for p in with_stages]
        header = ["stage", *(f"{p['load_pct']} %" for p in with_stages)]
        lines += _table(header, stage_grid(cols, "ms1"))
    return lines


def _sweep(res: dict[str, Any]) -> list[str]:
    sweep = res.get("sweep") or {}
    points = sweep.get("points", [])
    if not points:
        return []
    lines = ["", f"### Sweep (1 worker, {sweep.get('client', '?')})", ""]
    lines += [
        f"Throughput from a burst; latency at a fixed open-loop rate of "
        f"{fmt(sweep.get('load_rate'), 'rate')} events/s for every point. "
        f"{ceilings_text(res)}.",
        "",
    ]
    lines += _table(
        ["max_batch", "max_wait_ms", "transaction_max_events", "events/s", "p50", "p99",
         "achieved rate", "note"],
        [
            [
                str(p["batch"]), str(p["wait_ms"]), str(p.get("txn_max_events", 0)),
                fmt(p.get("rate"), "rate"), fmt(p.get("p50"), "ms"), fmt(p.get("p99"), "ms"),
                fmt(p.get("achieved_rate"), "rate"), p.get("note", ""),
            ]
            for p in points
        ],
    )  # fmt: skip
    return lines


def _soak(res: dict[str, Any]) -> list[str]:
    soak = res.get("soak") or {}
    samples = soak.get("samples", [])
    if not samples:
        return []
    lines = ["", "### Soak (worker RSS over time)", ""]
    lines += [
        f"1 worker ({soak.get('client', '?')}) for {fmt(soak.get('seconds'), 'rate')} s at "
        f"{fmt(soak.get('target_rate'), 'rate')} events/s (achieved "
        f"{fmt(soak.get('achieved_rate'), 'rate')}) = 50 % of "
        f"{fmt(soak.get('max_rate'), 'rate')} events/s; RSS every "
        f"{fmt(soak.get('tick_s'), 'rate')} s after a warm-up burst.",
        "",
    ]
    lines += _table(
        ["t (s)", "RSS MiB", "events sent", "backlog"],
        [
            [
                f"{s.get('t_s', 0):.0f}",
                " / ".join(f"{v:.1f}" for v in s.get("rss_mib", [])),
                str(s.get("sent", "")),
                str(s.get("backlog", "")),
            ]
            for s in samples
        ],
    )
    return lines


def _engine(res: dict[str, Any]) -> list[str]:
    sc = res.get("scoring") or {}
    rows = sc.get("rows", [])
    if not rows:
        return []
    dev = sc.get("device", {})
    lines = ["", "### Engine stages in-process (µs per event)", ""]
    where = f" ({dev['cuda']})" if dev.get("cuda") else f" ({dev.get('name', '')})"
    rounds = sc.get("rounds", 1)
    median = f", the median of {rounds} rounds" if rounds > 1 else ""
    lines += [
        f"Model family `{sc.get('family')}` on {dev.get('device')}{where}; each stage timed "
        f"on its own inputs{median}, no Kafka; columns are batch sizes.",
        "",
    ]
    cols = [per_event_us(r.get("seconds", {}), r["batch"]) for r in rows]
    lines += _table(["stage", *(str(r["batch"]) for r in rows)], stage_grid(cols))
    errors = {k: v for r in rows for k, v in r.get("errors", {}).items()}
    lines += [f"- `{k}` not timed: {v}" for k, v in errors.items()]
    return lines


def _reasons(res: dict[str, Any]) -> list[str]:
    r = res.get("reasons")
    if not r:
        return []
    a, b = r.get("methods", ["?", "?"])
    used = r.get("methods_used", [a, b])
    note = "" if list(used) == [a, b] else f" (methods that ran: {used[0]}, {used[1]})"
    return [
        "",
        "### Reason-method agreement",
        "",
        f"Top-{r.get('k')} reason features equal in {fmt(r.get('agreement'), 'ratio')} of "
        f"{r.get('rows')} credit_data rows, `{a}` vs `{b}`{note} (torch_mlp champion; "
        f"{r.get('seconds')} s each).",
    ]


def _memory(res: dict[str, Any]) -> list[str]:
    if not res.get("memory"):
        return []
    lines = ["", "### Worker memory per phase (RSS; the verdict is the soak's)", ""]
    return lines + _table(
        ["process", "start MiB", "end MiB", "growth", "events handled"],
        [
            [
                m["name"],
                fmt(m.get("rss_start_mib")),
                fmt(m.get("rss_end_mib")),
                fmt((ratio(m.get("rss_end_mib"), m.get("rss_start_mib")) or 1.0) - 1.0, "ratio"),
                str(m.get("events", "")),
            ]
            for m in res["memory"]
        ],
    )


def _profile(res: dict[str, Any]) -> list[str]:
    prof = res.get("profile") or {}
    if not prof.get("stages"):
        return []
    events = float(prof.get("events") or 0)
    us = per_event_us(stage_seconds(prof), events)
    lines = ["", "### Where the time goes (py-spy, real worker under burst load)", ""]
    lines += [
        f"{prof.get('samples')} samples of active Python threads over {prof.get('seconds', '?')}"
        f" s, {prof.get('events', '?')} events decided meanwhile ({prof.get('client', '?')}); "
        f"µs = Python thread time per event. py-spy (non-blocking) samples a thread as soon"
        " as it is runnable: `waiting` is threads parked in a lock or queue wait, not work.",
        "",
    ]
    return lines + _table(
        ["stage", "% of samples", "µs per event"],
        [[k, f"{v:.1f}", fmt(us.get(k), "us")] for k, v in prof["stages"].items()],
    )


def markdown(res: dict[str, Any]) -> str:
    """The whole report as Markdown (targets first)."""
    lines = _head(res) + _throughput(res) + _cpu(res)
    for section in (_latency, api_section, _sweep, _soak, _engine, _reasons, _memory, _profile):
        lines += section(res)
    lines += runtimes_section(res)
    return "\n".join(lines) + "\n"
