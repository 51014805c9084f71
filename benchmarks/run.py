"""``make bench`` / ``python -m benchmarks.run``: the whole benchmark in ONE run on the local stack.

Phases (each on its own topics, group, transactional ids and Celery queue; cleaned up after):

1. ceiling: ``benchmarks.loops ceiling`` — consume -> produce, no scoring, per client backend,
   with the decision loop's batcher and Kafka transaction (EOS) and without (plain);
2. e2e: real workers (``celery ... --decide``, kafka-python), 1 and 2 processes, plus the
   adapter loop (``benchmarks.loops decide``) per client backend;
3. peer: one Celery task per event (``benchmarks.naive_peer``) through the same Redis;
4. sweep: max_batch_size x max_wait_ms -> burst throughput and p50/p99 at a fixed rate;
5. latency at 50 % of the 1-worker maximum (open-loop producer), same worker as (2);
6. client backends: kafka-python vs confluent-kafka (ceilings and adapter loops above);
7. scoring micro-benchmark (rows/s by batch size; cuda when present);
8. worker RSS at start (after warm-up) and at the end; a py-spy profile under burst load.

Throughput: the events topic is empty and the consumers are warm and assigned; N events are
sent as fast as possible; rate = N / (time the N-th committed output was read - send start).

Writes ``<out>/results.json`` and ``<out>/results.md``; with ``--docs`` (default in full mode)
also replaces the results block of ``docs/benchmarks.md``.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    REPO,
    BurstProducer,
    Child,
    EventSource,
    OutputReader,
    Run,
    burst_produce,
    paced_produce,
    percentiles,
    stage_snapshot,
    stage_summary,
)
from benchmarks.kafka_backends import Backend, backend_available
from benchmarks.report import evaluate_targets, markdown
from devtools.launch import free_port
from workers.settings import Topics, WorkerSettings

__all__ = ["PHASES", "main", "sizes_for"]

PHASES = ("ceiling", "e2e", "peer", "sweep", "scoring")
DOCS = REPO / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"
PARTITIONS = 6
WARM = 200


def sizes_for(quick: bool) -> dict[str, Any]:
    """Event counts and durations of the quick (< 2 min) and full (~7 min here) modes."""
    if quick:
        return {
            "ceiling": 3000,
            "e2e": 3000,
            "peer": 200,
            "sweep_events": 1500,
            "sweep": [(100, 50), (500, 50)],
            "latency_s": 4.0,
            "sweep_latency_s": 2.0,
            "profile_s": 2.0,
            "scoring_batches": [1, 100, 1000],
            "scoring_min_s": 0.1,
        }
    return {
        "ceiling": 40_000,
        "e2e": 40_000,
        "peer": 1000,
        "sweep_events": 8000,
        "sweep": [(50, 50), (200, 50), (500, 10), (500, 50), (500, 200), (2000, 50)],
        "latency_s": 20.0,
        "sweep_latency_s": 8.0,
        "profile_s": 8.0,
        "scoring_batches": [1, 10, 100, 500, 1000, 5000],
        "scoring_min_s": 0.5,
    }


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


class Bench:
    """Runs the phases and collects one result object."""

    def __init__(self, run: Run, registry: Path, sizes: dict[str, Any], backends: list[Backend]):
        self.run = run
        self.registry = registry
        self.sizes = sizes
        self.backends = backends
        self.src = EventSource()
        self.res: dict[str, Any] = {"ceiling": {}, "e2e": {}, "memory": []}
        self.value_bytes = 900

    # ------------------------------------------------------------------ helpers

    def _loop_cmd(self, mode: str, backend: Backend, eos: bool, name: str) -> list[str]:
        return [
            sys.executable, "-m", "benchmarks.loops", mode, "--backend", backend,
            "--eos" if eos else "--no-eos", "--value-bytes", str(self.value_bytes),
            "--name", name,
        ]  # fmt: skip

    def _phase(
        self,
        phase: str,
        start: Callable[[Topics, str], list[Child]],
        members: int,
        n: int,
        after: Callable[[Topics, OutputReader, list[Child], float], None] | None = None,
        track_ids: bool = False,
    ) -> dict[str, Any]:
        """Start consumers, wait for the group, warm up, burst ``n`` events, time it."""
        run = self.run
        topics = run.make_topics(phase, PARTITIONS)
        group = run.name(phase)
        children = start(topics, group)
        reader = OutputReader(run.bootstrap, [topics.decisions, topics.dlq], track_ids)
        producer = BurstProducer(run.bootstrap)

        def alive() -> None:
            for c in children:
                c.check()

        try:
            join_s = run.wait_group(group, members, children)
            producer.send(topics.events, self.src.make(f"w{phase}-", WARM))
            reader.wait_for(WARM, 180, alive)
            rss_start = [c.rss_mib() for c in children]
            events = self.src.make(f"{phase}-", n)
            t0 = time.perf_counter()
            produce_s = producer.send(topics.events, events)
            t_end = reader.wait_for(WARM + n, max(180.0, n / 100), alive)
            seconds = t_end - t0
            out: dict[str, Any] = {
                "events": n,
                "seconds": round(seconds, 3),
                "rate": n / seconds,
                "produce_seconds": round(produce_s, 3),
                "group_join_seconds": round(join_s, 1),
                "rss_start_mib": rss_start,
            }
            if after is not None:
                after(topics, reader, children, out["rate"])
            out["rss_end_mib"] = [c.rss_mib() for c in children]
            return out
        finally:
            producer.close()
            reader.close()
            for c in children:
                c.stop()
            run.children = [c for c in run.children if c not in children]

    def _worker_env(
        self, topics: Topics, group: str, batch: int = 500, wait: int = 50, metrics_port: int = 0
    ) -> dict[str, str]:
        return self.run.env(
            topics,
            group,
            self.registry,
            DECISIONFLOW_MAX_BATCH_SIZE=str(batch),
            DECISIONFLOW_MAX_WAIT_MS=str(wait),
            DECISIONFLOW_DEVICE="auto",
            DECISIONFLOW_METRICS_PORT=str(metrics_port),
        )

    def _workers(
        self, count: int, batch: int = 500, wait: int = 50, metrics_port: int = 0
    ) -> Callable[[Topics, str], list[Child]]:
        def start(topics: Topics, group: str) -> list[Child]:
            env = self._worker_env(topics, group, batch, wait, metrics_port)
            return [self.run.start_worker(f"{group}-w{i + 1}", env) for i in range(count)]

        return start

    def _open_loop(
        self, topics: Topics, reader: OutputReader, rate: float, seconds: float, tag: str
    ) -> dict[str, Any]:
        """Send ``rate * seconds`` events on schedule; latency = read time - due time."""
        n = max(int(rate * seconds), 50)
        prefix = f"{tag}-"
        events = self.src.make(prefix, n)
        before = reader.count
        t0, achieved = paced_produce(
            self.run.bootstrap, topics.events, events, rate, warm_topic=topics.outcomes
        )  # the phase's outcomes topic is not read by anyone
        reader.wait_for(before + n, max(120.0, seconds * 4))
        lat = reader.latencies_ms(prefix, lambda i: t0 + i / rate)
        return {
            "target_rate": rate,
            "achieved_rate": achieved,
            "events": n,
            "seen": len(lat),
            **percentiles(lat, (50, 99)),
            "max": max(lat) if lat else float("nan"),
        }

    # ------------------------------------------------------------------ phases

    def measure_sizes(self) -> None:
        """Mean event and decision sizes (the ceiling sends decision-sized records)."""
        from decisioning.policy import load_policy
        from models.registry import ModelRegistry
        from workers.engine import DecisionEngine, RawRecord

        events = self.src.make("size-", 500)
        model = ModelRegistry(self.registry).load("credit_data", "champion", device="cpu")
        engine = DecisionEngine(
            model, load_policy("credit_v1", known_features=model.spec.feature_names), model.spec
        )
        out = engine.process([RawRecord("t", 0, i, k, v) for i, (k, v) in enumerate(events)])
        engine.close()
        sizes = [len(d.model_dump_json()) for d in out.decisions]
        self.value_bytes = int(sum(sizes) / max(len(sizes), 1))
        self.res["message_bytes"] = {
            "event_mean": int(sum(len(v) for _, v in events) / len(events)),
            "decision_mean": self.value_bytes,
        }

    def ceiling(self) -> None:
        """Bare consume -> produce per backend, EOS and plain."""
        n = self.sizes["ceiling"]
        for backend in self.backends:
            for eos in (True, False):
                key = f"{backend}_{'eos' if eos else 'plain'}"

                def start(
                    topics: Topics, group: str, b: Backend = backend, e: bool = eos
                ) -> list[Child]:
                    env = self._worker_env(topics, group)
                    cmd = self._loop_cmd("ceiling", b, e, group)
                    return [self.run.start(group, cmd, env)]

                print(f"[bench] ceiling {key}", flush=True)
                out = self._phase(f"ceil-{key}", start, 1, n)
                label = f"{backend}, {'EOS transaction per batch' if eos else 'no transaction'}"
                self.res["ceiling"][key] = {**out, "backend": backend, "label": label}

    def e2e(self) -> None:
        """Real workers (1 then 2), the adapter loop per backend; latency/profile on worker 1."""
        n = self.sizes["e2e"]

        def after_w1(
            topics: Topics, reader: OutputReader, children: list[Child], rate: float
        ) -> None:
            for pct in (50, 25):  # 25 %: the floor when the worker is not near saturation
                print(f"[bench] latency at {pct} % of {rate:,.0f} ev/s", flush=True)
                before = stage_snapshot(port)
                seconds = self.sizes["latency_s"] * pct / 50
                lat = self._open_loop(topics, reader, rate * pct / 100, seconds, f"lat{pct}")
                self.res[f"latency_{pct}"] = {
                    **lat,
                    "stages": stage_summary(before, stage_snapshot(port)),
                    "load_pct": pct,
                    "max_rate": rate,
                    "max_wait_ms": 50,
                    "config": "real worker, 1 process, max_batch 500, max_wait 50 ms",
                }
            self.res["profile"] = self._profile(topics, reader, children[0])

        print("[bench] e2e worker x1", flush=True)
        port = free_port()
        w1 = self._phase("e2e-w1", self._workers(1, metrics_port=port), 1, n, after_w1, True)
        self.res["e2e"]["worker_1"] = {
            **w1, "backend": "kafka-python", "label": "real worker x1 (celery --decide, EOS)"
        }  # fmt: skip
        self._memory("worker x1 (throughput + 50 % load + profile)", w1, 0)
        print("[bench] e2e worker x2", flush=True)
        w2 = self._phase("e2e-w2", self._workers(2), 2, n)
        self.res["e2e"]["worker_2"] = {
            **w2, "backend": "kafka-python", "label": "real workers x2 (celery --decide, EOS)"
        }  # fmt: skip
        for i in range(2):
            self._memory(f"worker x2 #{i + 1}", w2, i)
        for backend in self.backends:

            def start(topics: Topics, group: str, b: Backend = backend) -> list[Child]:
                env = self._worker_env(topics, group)
                return [self.run.start(group, self._loop_cmd("decide", b, True, group), env)]

            print(f"[bench] e2e adapter loop {backend}", flush=True)
            out = self._phase(f"e2e-loop-{backend}", start, 1, n)
            self.res["e2e"][f"loop_{backend}"] = {
                **out, "backend": backend, "label": f"adapter loop x1 ({backend}, EOS)"
            }  # fmt: skip

    def _memory(self, name: str, out: dict[str, Any], i: int) -> None:
        self.res["memory"].append(
            {
                "name": name,
                "rss_start_mib": round(out["rss_start_mib"][i], 1),
                "rss_end_mib": round(out["rss_end_mib"][i], 1),
                "events": out["events"],
            }
        )

    def _profile(self, topics: Topics, reader: OutputReader, child: Child) -> dict[str, Any]:
        """py-spy on the worker while it drains a fresh burst (not during measured phases)."""
        from benchmarks.profile import record

        secs = self.sizes["profile_s"]
        rate = self.res["latency_50"]["max_rate"]
        n = int(rate * secs * 1.5)
        before = reader.count
        burst_produce(self.run.bootstrap, topics.events, self.src.make("prof-", n))
        prof = record(child.proc.pid, secs, self.run.out_dir / "profile-worker.txt")
        reader.wait_for(before + n, 300)
        prof["seconds"] = secs
        return prof

    def peer(self) -> None:
        """One Celery task per event: a dispatcher process plus a solo worker, same Redis."""
        n = self.sizes["peer"]

        def start(topics: Topics, group: str) -> list[Child]:
            env = self._worker_env(topics, group)
            queue = self.run.name("peer-q")
            self.run.queues.append(queue)
            worker = self.run.start(
                f"{group}-worker",
                [
                    sys.executable, "-m", "celery", "-A", "benchmarks.naive_peer", "worker",
                    "--pool=solo", "-n", f"{group}@bench", "-Q", queue, "--without-gossip",
                    "--without-mingle", "--without-heartbeat", "--loglevel=WARNING",
                ],
                env,
            )  # fmt: skip
            disp = self.run.start(
                f"{group}-dispatcher",
                [sys.executable, "-m", "benchmarks.naive_peer", "dispatch", "--queue", queue],
                env,
            )
            return [worker, disp]

        print("[bench] per-event Celery peer", flush=True)
        out = self._phase("peer", start, 1, n)
        self.res["peer"] = {
            **out,
            "label": "dispatcher + 1 solo worker, one Celery task per event",
        }

    def sweep(self) -> None:
        """Burst throughput and fixed-rate latency per (max_batch, max_wait_ms)."""
        n = self.sizes["sweep_events"]
        base = self.res.get("e2e", {}).get("worker_1", {}).get("rate")
        load = 0.5 * base if base else 500.0
        rows = []
        for batch, wait in self.sizes["sweep"]:
            point: dict[str, Any] = {"batch": batch, "wait_ms": wait, "load_rate": load}

            def after(
                topics: Topics,
                reader: OutputReader,
                _c: list[Child],
                rate: float,
                p: dict[str, Any] = point,
                tag: str = f"sw{batch}x{wait}",
            ) -> None:
                if rate < load * 1.1:  # the open-loop rate would only build a backlog
                    p["note"] = "capacity below the fixed load rate: latency not measured"
                    return
                lat = self._open_loop(topics, reader, load, self.sizes["sweep_latency_s"], tag)
                p.update(
                    {"p50": lat["p50"], "p99": lat["p99"], "achieved_rate": lat["achieved_rate"]}
                )

            print(f"[bench] sweep batch={batch} wait={wait}", flush=True)
            out = self._phase(
                f"sw-{batch}-{wait}", self._workers(1, batch, wait), 1, n, after, track_ids=True
            )
            point["rate"] = out["rate"]
            rows.append(point)
        self.res["sweep"] = rows

    def scoring(self) -> None:
        """In-process rows/s by batch size."""
        from benchmarks.scoring import run_scoring
        from workers.engine import RawRecord

        print("[bench] scoring micro-benchmark", flush=True)
        events = self.src.make("sc-", 5000)
        records = [RawRecord("t", 0, i, k, v) for i, (k, v) in enumerate(events)]
        self.res["scoring"] = run_scoring(
            str(self.registry), records, self.sizes["scoring_batches"], self.sizes["scoring_min_s"]
        )


def _update_docs(md: str) -> None:
    text = DOCS.read_text() if DOCS.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    DOCS.write_text(f"{head}{BEGIN}\n{md}{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (see the module docstring); returns a process exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (< 2 minutes)")
    parser.add_argument("--only", default=",".join(PHASES), help=f"comma list of {PHASES}")
    parser.add_argument("--backends", default="kafka-python,confluent")
    parser.add_argument("--out", type=Path, default=None, help="default var/bench/<timestamp>")
    parser.add_argument(
        "--docs", action=argparse.BooleanOptionalAction, default=None,
        help="update docs/benchmarks.md (default: on in full mode, off with --quick)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    only = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(only) - set(PHASES)
    if unknown:
        parser.error(f"unknown phases {sorted(unknown)}")
    backends: list[Backend] = []
    for b in args.backends.split(","):
        if b not in ("kafka-python", "confluent"):
            parser.error(f"unknown backend {b}")
        if backend_available(b):  # type: ignore[arg-type]
            backends.append(b)  # type: ignore[arg-type]
        else:
            print(f"[bench] {b} not installed (pip install -e '.[fast]'): skipped", flush=True)
    docs = args.docs if args.docs is not None else not args.quick
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir = args.out or REPO / "var" / "bench" / stamp
    settings = WorkerSettings()
    sizes = sizes_for(args.quick)
    command = "python -m benchmarks.run " + shlex.join(argv if argv is not None else sys.argv[1:])
    started = time.monotonic()
    run = Run(settings.kafka.bootstrap_servers, settings.redis_url, out_dir)
    res: dict[str, Any] = {}
    failed: list[str] = []
    try:
        print(f"[bench] run {run.run_id} -> {out_dir}", flush=True)
        registry = build_registry(out_dir / "registry")
        bench = Bench(run, registry, sizes, backends)
        res = bench.res
        res["meta"] = {
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": _machine(),
            "command": command.strip(),
            "mode": "quick" if args.quick else "full",
            "uptime_before": _uptime(),
            "versions": _versions(),
            "run_id": run.run_id,
            "partitions": PARTITIONS,
            "sizes": {k: v for k, v in sizes.items() if not isinstance(v, list)},
        }
        bench.measure_sizes()
        for phase in PHASES:
            if phase not in only:
                continue
            try:
                getattr(bench, phase)()
            except Exception as exc:  # one phase failing must not lose the others
                traceback.print_exc()
                failed.append(phase)
                res.setdefault("errors", {})[phase] = f"{type(exc).__name__}: {exc}"
    finally:
        run.close()
    res.setdefault("meta", {})["uptime_after"] = _uptime()
    res["meta"]["wall_seconds"] = round(time.monotonic() - started, 1)
    res["targets"] = evaluate_targets(res)
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
