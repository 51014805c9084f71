"""``make bench`` / ``python -m benchmarks.run``: the whole benchmark in ONE run on the local stack.

Phases (in this order; each streaming phase on its own topics, group, transactional ids and
Celery queue, cleaned up after):

1. ``ceiling``: ``benchmarks.loops ceiling`` per client: the EOS consume -> produce loop,
   1 process, the workers' batcher and transaction size, no decision;
2. ``workers``: real workers (``decisionflow worker``, the production loop) on EACH client,
   1 and 2 processes; the default client's 1-worker phase also runs the latency loads (3) and
   a py-spy profile under a burst;
3. ``latency``: p99 at 10/25/50/75 % of the measured 1-worker maximum on the default client;
4. ``sweep``: (max_batch_size, max_wait_ms, transaction_max_events) -> burst throughput and
   p50/p99 at a fixed rate (50 % of the default client's 1-worker maximum);
5. ``soak``: 1 worker at 50 % of that maximum for ``--soak-s`` (10 min in full mode; not run
   in quick mode unless named in ``--only``), RSS after warm-up and every 30 s;
6. ``peer``: one Celery task per event (``benchmarks.naive_peer``) through the same Redis;
7. ``scoring``: in-process engine stages, µs per event per stage by batch size;
8. ``reasons``: top-3 reason agreement, integrated gradients vs gradient x input.
9. ``api``: p50/p99 of ``POST /v1/decisions`` (``decisionflow serve`` + 1 worker) at stated
   request rates (:mod:`benchmarks.api`).
10. ``runtimes``: rows/s per score runtime (native, onnx, int8; fp16/bf16 with a GPU) and
    batch size, in-process, with each variant's parity (:mod:`benchmarks.runtimes`).

Writes ``<out>/results.json`` and ``<out>/results.md``; with ``--docs`` (default in full mode)
also replaces the results block of ``docs/benchmarks.md``. Verdicts: :mod:`benchmarks.targets`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks.bench import Bench
from benchmarks.harness import REPO, Run
from benchmarks.phase import PARTITIONS, SweepPoint
from benchmarks.report import markdown
from benchmarks.targets import client_choice, draws_verdict, no_verdict_line, verdicts
from workers.kafka_client import CLIENTS
from workers.settings import WorkerSettings

__all__ = ["PHASES", "main", "parse_sweep", "phases_for", "sizes_for"]

#: The phases that stream through the broker (a cold broker would slow the first of them).
STREAMING = {"ceiling", "workers", "latency", "sweep", "soak", "peer", "api"}

PHASES = (
    "ceiling",
    "workers",
    "latency",
    "sweep",
    "soak",
    "peer",
    "scoring",
    "reasons",
    "api",
    "runtimes",
)
QUICK_SKIPS = ("soak",)
DOCS = REPO / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"
FULL_SWEEP: list[SweepPoint] = [
    (50, 50, 0), (200, 50, 0), (500, 10, 0), (500, 50, 0), (500, 200, 0), (2000, 50, 0),
    (500, 50, 2000), (500, 50, 5000), (100, 10, 2000),
]  # fmt: skip
QUICK_SWEEP: list[SweepPoint] = [(100, 50, 0), (500, 50, 0), (500, 50, 2000)]


def sizes_for(
    quick: bool, soak_s: float | None = None, sweep: list[SweepPoint] | None = None
) -> dict[str, Any]:
    """Event counts and durations: quick (smoke, ~3 min) and full (~22 min on 2 cores, 10 of
    them the soak; docs/benchmarks.md, *Duration*)."""
    if quick:
        sizes: dict[str, Any] = {
            "ceiling": 3000,
            "broker_warm": 0,
            "workers": 3000,
            "peer": 200,
            "latency_pcts": [10, 25, 50, 75],
            "latency_s": 3.0,
            "profile_s": 2.0,
            "sweep_events": 1500,
            "sweep_latency_s": 2.0,
            "sweep_fallback_rate": 500,
            "sweep": QUICK_SWEEP,
            "soak_s": 30.0,
            "soak_tick_s": 10.0,
            "soak_warm_events": 2000,
            "scoring_batches": [1, 100, 1000],
            "scoring_min_s": 0.05,
            "scoring_rounds": 1,
            "runtimes_batches": [1, 32, 500, 2000],
            "runtimes_min_s": 0.05,
            "api_rates": [20],
            "api_s": 3.0,
        }
    else:
        sizes = {
            "ceiling": 200_000,
            "broker_warm": 200_000,
            "workers": 120_000,
            "peer": 1000,
            "latency_pcts": [10, 25, 50, 75],
            "latency_s": 20.0,
            "profile_s": 8.0,
            "sweep_events": 100_000,
            "sweep_latency_s": 8.0,
            "sweep_fallback_rate": 500,
            "sweep": FULL_SWEEP,
            "soak_s": 600.0,
            "soak_tick_s": 30.0,
            "soak_warm_events": 20_000,
            "scoring_batches": [1, 10, 100, 500, 1000, 5000],
            "scoring_min_s": 0.3,
            "scoring_rounds": 3,
            "runtimes_batches": [1, 32, 500, 2000],
            "runtimes_min_s": 0.5,
            "api_rates": [25, 50, 100],
            "api_s": 15.0,
        }
    if soak_s is not None:
        sizes["soak_s"] = float(soak_s)
    if sweep is not None:
        sizes["sweep"] = sweep
    return sizes


def phases_for(only: str | None, quick: bool) -> list[str]:
    """The phases to run, in :data:`PHASES` order: those named in ``only`` (comma list), else
    all (quick mode skips the soak unless it is named). ValueError on an unknown name."""
    if only is None:
        return [p for p in PHASES if not (quick and p in QUICK_SKIPS)]
    named = [p.strip() for p in only.split(",") if p.strip()]
    unknown = sorted(set(named) - set(PHASES))
    if unknown:
        raise ValueError(f"unknown phases {unknown}; known: {list(PHASES)}")
    return [p for p in PHASES if p in named]


def parse_sweep(text: str) -> list[SweepPoint]:
    """``"500:50,500:50:2000"`` -> ``[(500, 50, 0), (500, 50, 2000)]`` (max_batch_size :
    max_wait_ms [: transaction_max_events])."""
    points: list[SweepPoint] = []
    for item in text.split(","):
        if not item.strip():
            continue
        parts = [int(x) for x in item.strip().split(":")]
        if len(parts) not in (2, 3) or parts[0] < 1 or min(parts) < 0:
            raise ValueError(f"bad sweep point {item!r}: want BATCH:WAIT_MS[:TXN_EVENTS]")
        points.append((parts[0], parts[1], parts[2] if len(parts) == 3 else 0))
    if not points:
        raise ValueError("empty sweep")
    return points


def parse_clients(text: str) -> list[str]:
    """``"confluent,kafka-python"`` -> the named clients (ValueError on an unknown one)."""
    named = [c.strip() for c in text.split(",") if c.strip()]
    unknown = sorted(set(named) - set(CLIENTS))
    if unknown:
        raise ValueError(f"unknown clients {unknown}; known: {list(CLIENTS)}")
    return named


def _uptime() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _machine() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import psutil

        mem = f"{psutil.virtual_memory().total / 2**30:.0f} GiB"
    except ImportError:
        mem = "?"
    return f"{cpu}, {os.cpu_count()} cores, {mem} RAM, {platform.system()} {platform.release()}"


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in ("kafka-python", "confluent-kafka", "celery", "torch", "redis"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def build_registry(root: Path) -> Path:
    """A registry with a torch_mlp champion trained on the real credit table (seconds)."""
    from models.data import holdout_split, load_frame
    from models.registry import ModelRegistry
    from models.spec import load_spec
    from models.training import train_family

    spec = load_spec("credit_data")
    train, _ = holdout_split(load_frame(spec), spec, 0.25, seed=1)
    reg = ModelRegistry(root)
    model = train_family("torch_mlp", train, spec, {"max_epochs": 20}, seed=1, device="cpu")
    version = reg.register(model)
    reg.promote(spec.name, version, "champion", reason="benchmark")
    return root


def _update_docs(md: str) -> None:
    text = DOCS.read_text() if DOCS.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    DOCS.write_text(f"{head}{BEGIN}\n{md}{END}{tail}")


def _args(argv: list[str] | None) -> argparse.Namespace:
    default_client = WorkerSettings.model_fields["kafka_client"].default
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, no verdicts")
    parser.add_argument(
        "--only", default=None,
        help=f"comma list of {list(PHASES)} (default: all; --quick skips soak)",
    )  # fmt: skip
    parser.add_argument("--clients", default=",".join(CLIENTS), help="Kafka clients to run")
    parser.add_argument(
        "--default-client", choices=CLIENTS, default=default_client,
        help="client of the latency, sweep, soak and profile (default: the workers' default)",
    )  # fmt: skip
    parser.add_argument(
        "--transaction-max-events", type=int, default=None,
        help="DECISIONFLOW_TRANSACTION_MAX_EVENTS of ceilings, workers, latency and soak "
        "(default: the workers' default)",
    )  # fmt: skip
    parser.add_argument("--soak-s", type=float, default=None, help="soak duration (s)")
    parser.add_argument(
        "--sweep", default=None, help="sweep points BATCH:WAIT_MS[:TXN_EVENTS],... "
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help="default var/bench/<timestamp>")
    parser.add_argument(
        "--docs", action=argparse.BooleanOptionalAction, default=None,
        help="update docs/benchmarks.md (default: on in full mode, off with --quick)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        args.phases = phases_for(args.only, args.quick)
        args.client_list = parse_clients(args.clients)
        args.sweep_points = parse_sweep(args.sweep) if args.sweep else None
    except ValueError as exc:
        parser.error(str(exc))
    if args.default_client not in args.client_list and {"latency", "sweep", "soak"} & set(
        args.phases
    ):
        print(f"[bench] note: default client {args.default_client} is not in --clients")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (see the module docstring); returns a process exit code."""
    args = _args(argv)
    docs = args.docs if args.docs is not None else not args.quick
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir = args.out or REPO / "var" / "bench" / stamp
    settings = WorkerSettings()
    sizes = sizes_for(args.quick, args.soak_s, args.sweep_points)
    command = "python -m benchmarks.run " + shlex.join(argv if argv is not None else sys.argv[1:])
    mode = "quick" if args.quick else "full"
    started = time.monotonic()
    run = Run(settings.kafka.bootstrap_servers, settings.redis_url, out_dir)
    res: dict[str, Any] = {}
    failed: list[str] = []
    try:
        print(f"[bench] run {run.run_id} -> {out_dir}; phases {args.phases}", flush=True)
        registry = build_registry(out_dir / "registry")
        bench = Bench(
            run, registry, sizes, args.client_list,
            default_client=args.default_client, phases=args.phases,
            transaction_max_events=(
                args.transaction_max_events
                if args.transaction_max_events is not None
                else settings.transaction_max_events
            ),
        )  # fmt: skip
        res = bench.res
        res["meta"] = {
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": _machine(),
            "command": command.strip(),
            "mode": mode,
            "phases": args.phases,
            "uptime_before": _uptime(),
            "versions": _versions(),
            "run_id": run.run_id,
            "partitions": PARTITIONS,
            "sizes": {k: v for k, v in sizes.items() if k != "sweep"},
        }
        bench.measure_sizes()
        if STREAMING & set(args.phases):
            bench.warm_broker()
        for phase in args.phases:
            try:
                getattr(bench, phase)()
            except Exception as exc:  # one phase failing must not lose the others
                traceback.print_exc()
                failed.append(phase)
                res.setdefault("errors", {})[phase] = f"{type(exc).__name__}: {exc}"[:500]
    finally:
        run.close()
    res.setdefault("meta", {})["uptime_after"] = _uptime()
    res["meta"].setdefault("mode", mode)  # a run that failed early
    res["meta"]["wall_seconds"] = round(time.monotonic() - started, 1)
    res["client_choice"] = client_choice(res)
    # verdicts only from a full run: a quick (smoke) run's bursts are too short to time
    res["targets"] = verdicts(res)
    if not draws_verdict(res):
        res["targets_note"] = no_verdict_line(res)
    (out_dir / "results.json").write_text(json.dumps(res, indent=2, default=str))
    md = markdown(res)
    (out_dir / "results.md").write_text(md)
    print(md)
    print(f"[bench] wrote {out_dir / 'results.json'} and results.md", flush=True)
    if docs:
        _update_docs(md)
        print(f"[bench] updated {DOCS}", flush=True)
    subprocess.run(["uptime"], check=False)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
