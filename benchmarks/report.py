"""Ratios, targets and the Markdown report of a benchmark result (pure functions, no I/O).

A result is the JSON object ``benchmarks.run`` writes; every section is optional so a partial
run (``--only``) still renders. Targets (issue 9):

* end to end >= 70 % of the ceiling with exactly-once, per client backend;
* >= 30x the per-event Celery peer;
* p99 end-to-end latency <= max_wait + 50 ms at 50 % of the maximum sustainable rate;
* worker RSS growth < 10 % across the run.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["TARGETS", "evaluate_targets", "markdown", "ratio"]

TARGETS = {
    "e2e_vs_ceiling": 0.70,
    "vs_peer": 30.0,
    "p99_slack_ms": 50.0,
    "rss_growth": 0.10,
}


def ratio(num: float | None, den: float | None) -> float | None:
    """``num / den``; None when either is missing, not finite or ``den`` is zero."""
    if num is None or den is None:
        return None
    if not (math.isfinite(num) and math.isfinite(den)) or den == 0:
        return None
    return num / den


def _rate(section: dict[str, Any] | None) -> float | None:
    if not section or "rate" not in section:
        return None
    return float(section["rate"])


def evaluate_targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per target: what was compared, the measured value, the bound and whether met.

    ``met`` is None when the inputs are missing (the row still says what is missing).
    """
    rows: list[dict[str, Any]] = []
    ceiling = res.get("ceiling", {})
    e2e = res.get("e2e", {})
    target = TARGETS["e2e_vs_ceiling"]
    pairs = [
        ("kafka-python", "worker_1", "e2e, real worker (kafka-python, 1 worker)"),
        ("kafka-python", "loop_kafka-python", "e2e, adapter loop (kafka-python, 1 process)"),
        ("confluent", "loop_confluent", "e2e, adapter loop (confluent-kafka, 1 process)"),
    ]
    for backend, key, label in pairs:
        den = _rate(ceiling.get(f"{backend}_eos"))
        r = ratio(_rate(e2e.get(key)), den)
        rows.append(
            {
                "target": f"{label} / ceiling ({backend}, EOS)",
                "value": r,
                "bound": f">= {target:.0%}",
                "met": None if r is None else r >= target,
                "unit": "ratio",
            }
        )
    peer = _rate(res.get("peer"))
    for key, label in (("worker_1", "1 worker"), ("worker_2", "2 workers")):
        r = ratio(_rate(e2e.get(key)), peer)
        rows.append(
            {
                "target": f"e2e ({label}) / per-event Celery peer",
                "value": r,
                "bound": f">= {TARGETS['vs_peer']:.0f}x",
                "met": None if r is None else r >= TARGETS["vs_peer"],
                "unit": "x",
            }
        )
    lat = res.get("latency_50")
    if lat:
        budget = float(lat["max_wait_ms"]) + TARGETS["p99_slack_ms"]
        p99 = lat.get("p99")
        ok = p99 is not None and math.isfinite(p99)
        rows.append(
            {
                "target": "p99 e2e latency at 50 % of max rate",
                "value": p99,
                "bound": f"<= {budget:.0f} ms",
                "met": (p99 <= budget) if ok else None,
                "unit": "ms",
            }
        )
    for m in res.get("memory", []):
        growth = ratio(m.get("rss_end_mib"), m.get("rss_start_mib"))
        g = None if growth is None else growth - 1.0
        rows.append(
            {
                "target": f"RSS growth, {m['name']}",
                "value": g,
                "bound": f"< {TARGETS['rss_growth']:.0%}",
                "met": None if g is None else g < TARGETS["rss_growth"],
                "unit": "ratio",
            }
        )
    return rows


# --------------------------------------------------------------------------- markdown


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and not math.isfinite(value):
        return "n/a"
    if unit == "ratio":
        return f"{value:.0%}" if abs(value) >= 0.01 else f"{value:.1%}"
    if unit == "x":
        return f"{value:.1f}x"
    if unit == "ms":
        return f"{value:.0f} ms"
    if unit == "rate":
        return f"{value:,.0f}"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _met(met: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "not measured"}[met]


def markdown(res: dict[str, Any]) -> str:
    """The whole report as Markdown (headline targets first)."""
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
            "",
        ]
    lines += ["### Targets", ""]
    lines += _table(
        ["target", "measured", "bound", "verdict"],
        [
            [r["target"], _fmt(r["value"], r["unit"]), r["bound"], _met(r["met"])]
            for r in evaluate_targets(res)
        ],
    )
    lines += ["", "### Throughput (events in -> committed outputs)", ""]
    ceiling = res.get("ceiling", {})
    e2e = res.get("e2e", {})
    ref = _rate(ceiling.get("kafka-python_eos"))
    rows = []
    for group, section in (("ceiling", ceiling), ("e2e", e2e)):
        for key, item in section.items():
            backend = item.get("backend", "")
            own = _rate(ceiling.get(f"{backend}_eos"))
            rows.append(
                [
                    f"{group}: {item.get('label', key)}",
                    str(item.get("events", "")),
                    _fmt(item.get("seconds")),
                    _fmt(_rate(item), "rate"),
                    _fmt(ratio(_rate(item), own), "ratio"),
                    _fmt(ratio(_rate(item), ref), "ratio"),
                ]
            )
    if res.get("peer"):
        p = res["peer"]
        rows.append(
            [
                f"peer: {p.get('label', 'per-event Celery task')}",
                str(p.get("events", "")),
                _fmt(p.get("seconds")),
                _fmt(_rate(p), "rate"),
                "",
                _fmt(ratio(_rate(p), ref), "ratio"),
            ]
        )
    lines += _table(
        ["configuration", "events", "s", "events/s", "vs own-backend EOS ceiling",
         "vs kafka-python EOS ceiling"],
        rows,
    )  # fmt: skip
    if res.get("sweep"):
        lines += ["", "### Batch size / max wait sweep (real worker, 1 process)", ""]
        sweep_rate = res["sweep"][0].get("load_rate")
        lines += [
            f"Throughput from a burst; latency at a fixed open-loop rate of "
            f"{_fmt(sweep_rate, 'rate')} events/s for every point.",
            "",
        ]
        lines += _table(
            ["max_batch", "max_wait_ms", "events/s", "p50 ms", "p99 ms", "achieved rate"],
            [
                [
                    str(s["batch"]),
                    str(s["wait_ms"]),
                    _fmt(s.get("rate"), "rate"),
                    _fmt(s.get("p50"), "ms"),
                    _fmt(s.get("p99"), "ms"),
                    _fmt(s.get("achieved_rate"), "rate"),
                ]
                for s in res["sweep"]
            ],
        )
    for pct in (50, 25):
        if not (lat := res.get(f"latency_{pct}")):
            continue
        lines += ["", f"### Latency at {pct} % of the maximum sustainable rate", ""]
        lines += [
            f"Open-loop producer at {_fmt(lat.get('target_rate'), 'rate')} events/s "
            f"(achieved {_fmt(lat.get('achieved_rate'), 'rate')}) = {pct} % of "
            f"{_fmt(lat.get('max_rate'), 'rate')} events/s ({lat.get('config', '')}); "
            f"{lat.get('events')} events; p50 {_fmt(lat.get('p50'), 'ms')}, "
            f"p99 {_fmt(lat.get('p99'), 'ms')}, max {_fmt(lat.get('max'), 'ms')}; "
            f"latency = committed decision read (read_committed) - scheduled send time.",
        ]
        if stages := lat.get("stages"):
            lines += ["", "Where a batch's time goes at that load (worker stage histogram):", ""]
            lines += _table(
                ["stage", "batches", "mean ms", "p99 <= ms"],
                [
                    [s["stage"], str(s["batches"]), f"{s['mean_ms']:.1f}", f"{s['p99_le_ms']:g}"]
                    for s in stages
                ],
            )
    if sc := res.get("scoring"):
        dev = sc.get("device", {})
        lines += ["", "### Scoring micro-benchmark (rows/s)", ""]
        lines += [
            f"Model family `{sc.get('family')}` on {dev.get('device')}"
            + (f" ({dev['cuda']})" if dev.get("cuda") else f" ({dev.get('name', '')})")
            + ".",
            "",
        ]
        lines += _table(
            ["batch", "bare torch", "score", "score + explain", "engine", "engine + JSON",
             "engine / bare"],
            [
                [
                    str(r["batch"]),
                    _fmt(r["bare_torch"], "rate"),
                    _fmt(r["score"], "rate"),
                    _fmt(r["score_explain"], "rate"),
                    _fmt(r["engine"], "rate"),
                    _fmt(r["engine_serialise"], "rate"),
                    _fmt(ratio(r["engine"], r["bare_torch"]), "ratio"),
                ]
                for r in sc.get("rows", [])
            ],
        )  # fmt: skip
    if res.get("memory"):
        lines += ["", "### Worker memory (RSS)", ""]
        lines += _table(
            ["process", "start MiB", "end MiB", "growth", "events handled"],
            [
                [
                    m["name"],
                    _fmt(m.get("rss_start_mib")),
                    _fmt(m.get("rss_end_mib")),
                    _fmt(
                        (ratio(m.get("rss_end_mib"), m.get("rss_start_mib")) or 1.0) - 1.0,
                        "ratio",
                    ),
                    str(m.get("events", "")),
                ]
                for m in res["memory"]
            ],
        )
    if (prof := res.get("profile")) and prof.get("stages"):
        lines += ["", "### Where the time goes (py-spy, real worker under burst load)", ""]
        lines += [f"{prof.get('samples')} samples over {prof.get('seconds', '?')} s.", ""]
        lines += _table(
            ["stage", "% of samples"],
            [[k, f"{v:.1f}"] for k, v in prof["stages"].items()],
        )
    return "\n".join(lines) + "\n"
