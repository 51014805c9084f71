"""`make demo`: the whole loop end to end on the local stack.

    python -m devtools.demo [--repeat 4] [--rate 1500] [--burst 10000] [--keep] [--home var]

1. checks the stack (Kafka, Redis, PostgreSQL; `make demo` starts it first);
2. trains and promotes the first champion by running the retrain DAG (Airflow `dag.test`);
3. starts two Celery decision workers (each run logs to its own ``demo/logs/<run id>/``) and
   waits until they logged their loop start, their group is Stable and a warm-up burst of
   ``--warm-up`` events is decided (nothing measured yet);
4. streams held-back rows of the credit table through `decisionflow produce`, with malformed
   events mixed in, at ``--rate`` (offered load and latency), then writes a burst of
   ``--burst`` events to Kafka as fast as it can and times the workers draining it (capacity);
   then publishes the outcomes;
5. lands decisions and outcomes in the store (`decisionflow sink`), runs the evaluate DAG,
   which writes the analyst reports;
6. prints a summary (also ``demo/summary.json`` in the home) and stops what it started unless
   ``--keep``.

What the figures mean (:mod:`devtools.demo_stats`): the offered load is events sent / send
duration; latency is the time a ``read_committed`` consumer read the decision minus the event's
``event_time``; capacity is decisions/s while the workers had a backlog. The demo reads only
this run's records: from the decisions and dead-letter topics' end offsets at the start of the
run, decisions by this run's event ids, dead letters by source offsets.

Everything lands in the default layout (:mod:`models.paths`: ``var/registry``,
``var/reference``, ``var/reports``, ``var/airflow``, the stack's PostgreSQL), so after the demo
``decisionflow worker``, ``decisionflow models list``, ``make airflow`` and the DAGs see its
models, reference data and store with no extra settings. ``--home DIR`` puts all of it under
DIR instead (tests).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devtools.airflow_local import DagRunner
from devtools.demo_reader import CommittedReader, Read, end_offsets
from devtools.demo_stats import (
    LATENCY_MEANING,
    capacity,
    epoch_seconds,
    group_members,
    latency_summary,
    measurement_lines,
    offered_rate,
    run_dead_letters,
)
from devtools.launch import ChildProcess, stop_all
from models import paths
from workers.settings import SinkSettings, Topics

if TYPE_CHECKING:
    from workers.producer import EventProducer

__all__ = ["Demo", "build_parser", "main"]

DAG_RETRAIN = "decisionflow_retrain"
DAG_EVALUATE = "decisionflow_evaluate"
_STACK_DIR = paths.stack_dir()  # resolved before --home can move the home
_CWD = paths.repo_root() or Path.cwd()


class Demo:
    """Runs the stages and keeps their timings and results."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.run_id = args.run_id or time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4]
        if args.home:
            os.environ[paths.HOME_ENV] = str(Path(args.home).resolve())
        self.home = paths.home()
        self.dir = paths.demo_dir()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.timings: dict[str, float] = {}
        self.summary: dict[str, Any] = {"run_id": self.run_id}
        self.workers: list[ChildProcess] = []
        self.reader: CommittedReader | None = None
        self.producer: EventProducer | None = None
        self.airflow: DagRunner | None = None
        settings = SinkSettings()
        prefix = args.topic_prefix
        self.topics = (
            Topics(**{k: f"{prefix}{v}" for k, v in Topics().model_dump().items()})
            if prefix
            else settings.topics
        )
        self.bootstrap = settings.kafka.bootstrap_servers
        self.database_url = args.database_url or settings.database_url.get_secret_value()
        self.env = self._env()

    # ------------------------------------------------------------------ plumbing

    def _env(self) -> dict[str, str]:
        from devtools.airflow_local import airflow_env

        env = airflow_env(port=self.args.airflow_port)
        env.update(
            {
                paths.HOME_ENV: str(self.home),
                # the stack this process found, even when --home moved everything else
                "DECISIONFLOW_RUN_DIR": str(_STACK_DIR),
                "DECISIONFLOW_DATABASE_URL": self.database_url,
                "DECISIONFLOW_GROUP_ID": f"decisionflow-{self.args.topic_prefix or 'demo'}",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                "PYTHONUNBUFFERED": "1",
                **self.topics.env(),
            }
        )
        return env

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        print(f"\n== {name}", flush=True)
        t0 = time.perf_counter()
        yield
        self.timings[name] = time.perf_counter() - t0
        print(f"   done in {self.timings[name]:.1f}s", flush=True)

    def cli(self, *args: str) -> str:
        """Run a `decisionflow` sub-command with the demo's environment."""
        cmd = [sys.executable, "-m", "workers.cli", *args]
        proc = subprocess.run(cmd, env=self.env, cwd=_CWD, text=True, capture_output=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        out = proc.stdout.strip()
        if out:
            print("   " + out.replace("\n", "\n   "), flush=True)
        return out

    # ------------------------------------------------------------------ stages

    def check_stack(self) -> None:
        status = subprocess.run(  # self.env names the stack even when --home moved the rest
            [str(_CWD / "infra" / "stack"), "status"], env=self.env, text=True, capture_output=True
        )
        print("   " + status.stdout.strip().replace("\n", "\n   "))
        if status.returncode != 0:
            raise RuntimeError("the stack is not healthy: run `make stack-up` (make demo does)")
        if self.args.topic_prefix:
            from kafka.admin import KafkaAdminClient, NewTopic

            admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
            existing = set(admin.list_topics())
            new = [
                NewTopic(t, 1 if t == self.topics.dlq else 6, 1)
                for t in self.topics.names()
                if t not in existing
            ]
            if new:
                admin.create_topics(new)
            admin.close()

    def split_data(self) -> None:
        from models.data import holdout_split, load_frame
        from models.spec import load_spec

        spec = load_spec("credit_data")
        train, held = holdout_split(load_frame(spec), spec, self.args.held_back, seed=11)
        self.train_csv = self.dir / "train.csv"
        self.held_csv = self.dir / "heldback.csv"
        train.to_csv(self.train_csv, index=False)
        held.to_csv(self.held_csv, index=False)
        print(f"   {len(train)} rows to train on, {len(held)} rows held back for streaming")
        self.summary["rows"] = {"train": len(train), "held_back": len(held)}

    def _airflow(self) -> DagRunner:
        """The demo's Airflow child: migrates the metadata DB, then runs both DAGs."""
        if self.airflow is None:
            self.airflow = DagRunner(self.env)
        return self.airflow

    def retrain(self) -> None:
        from models.registry import ModelRegistry

        conf = {"families": self.args.families, "bootstrap_source": str(self.train_csv)}
        run = self._airflow().run(DAG_RETRAIN, conf)
        print(f"   retrain DAG run {run['run_id']}: {run['state']}")
        failed = {k: v for k, v in run["tasks"].items() if "success" not in v}
        if "success" not in run["state"] or failed:
            raise RuntimeError(f"retrain DAG failed: {failed}\n{run['log'][-4000:]}")
        registry = ModelRegistry(paths.registry_url())
        name = SinkSettings().model_name
        meta = registry.metadata(name, "champion")
        last = registry.history(name)[-1].to_dict()
        self.summary["champion"] = {
            "name": name,
            "version": meta["version"],
            "family": meta["family"],
            "holdout": _headline(meta.get("metrics", {})),
            "last_alias_move": {k: last.get(k) for k in ("action", "to_version", "reason")},
        }
        print(f"   champion: {name} v{meta['version']} ({meta['family']})")

    def start_workers(self) -> None:
        """Start the workers; ready = each logged its loop start in THIS run's log, the group is
        Stable with all of them, and a warm-up burst was decided (not measured)."""
        from devtools.launch import start_worker

        # a fresh log folder per run: a readiness check can never see an earlier run's lines
        # (ChildProcess also reads only what its own process wrote)
        logs = self.dir / "logs" / paths.safe_part(self.run_id)
        for i in range(1, self.args.workers + 1):
            name = f"demo{i}-{self.args.topic_prefix or 'main'}"
            self.workers.append(start_worker(name, self.env, logs))
        for worker in self.workers:
            worker.wait_for_log("decision loop started", 120)
        print(f"   {len(self.workers)} workers started; logs in {logs}", flush=True)
        self._wait_group()
        self._start_reader()
        self.warm_up()

    def _alive(self) -> None:
        for worker in self.workers:
            worker.check()

    def _wait_group(self, timeout: float = 60.0) -> None:
        """Wait until the workers' consumer group is Stable with all of them (best effort: a
        broker that cannot describe it only costs the wait)."""
        from kafka.admin import KafkaAdminClient

        group = self.env["DECISIONFLOW_GROUP_ID"]
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        t0 = time.monotonic()
        try:
            while time.monotonic() - t0 < timeout:
                self._alive()
                try:
                    info = admin.describe_groups([group]).get(group)
                except Exception:
                    info = None
                members = group_members(info)
                if members is not None and members >= len(self.workers):
                    print(f"   group {group} stable with {members} members", flush=True)
                    if members > len(self.workers):
                        print(
                            "   warning: workers of an earlier run (--keep?) are in the group "
                            "too; they share the load and the figures below",
                            flush=True,
                        )
                    return
                time.sleep(0.5)
            print(f"   warning: group {group} not stable in {timeout:.0f}s", flush=True)
        finally:
            admin.close()

    def _start_reader(self) -> None:
        """From here on the demo reads this run's committed decisions and dead letters only:
        it starts at the topics' current end offsets."""
        start = {
            t: end_offsets(self.bootstrap, t) for t in (self.topics.decisions, self.topics.dlq)
        }
        self.reader = CommittedReader(
            self.bootstrap, self.topics.decisions, self.topics.dlq, start, f"{self.run_id}-"
        )

    def _reader(self) -> CommittedReader:
        if self.reader is None:
            raise RuntimeError("the reader starts with the workers (stage 4)")
        return self.reader

    def _events(self, prefix: str, n: int) -> list[tuple[str, bytes]]:
        """``n`` serialised events from the held-back rows (cycled), ids ``<prefix><i>``."""
        from models.data import load_frame
        from models.spec import load_spec
        from workers.producer import event_payload, events_from_frame

        spec = load_spec("credit_data")
        rows = list(
            events_from_frame(
                load_frame(spec, str(self.held_csv)), spec.feature_names, spec.entity_key.column
            )
        )
        out = []
        for i in range(n):
            entity_id, features = rows[i % len(rows)]
            payload = event_payload(
                entity_id, features, event_id=f"{prefix}{i}", producer="decisionflow-demo"
            )
            out.append((entity_id, json.dumps(payload, allow_nan=False).encode()))
        return out

    def _send(self, events: list[tuple[str, bytes]]) -> float:
        """Send ``events`` as fast as the client can; returns when all are in Kafka (wall
        clock, the reader's clock)."""
        from workers.producer import EventProducer

        if self.producer is None:
            self.producer = EventProducer(self.bootstrap, topic=self.topics.events)
        for key, value in events:
            self.producer.send_raw(key, value)
        self.producer.flush()
        return time.time()

    def _wait_phase(
        self, prefix: str, sent: int, start: dict[int, int], end: dict[int, int]
    ) -> tuple[list[Read], list[Any]]:
        """Wait until ``sent`` events of a phase are decided or dead-lettered (this run's
        records only: decisions by event id prefix, dead letters by source offset)."""
        reader = self._reader()

        def phase() -> tuple[list[Read], list[Any]]:
            letters = [r.record for r in reader.dead_letters()]
            return reader.decisions(prefix), run_dead_letters(
                letters, self.topics.events, start, end
            )

        def done() -> bool:
            decisions, dlq = phase()
            return len(decisions) + len(dlq) >= sent

        try:
            reader.wait_until(done, self.args.timeout, self._alive)
        except TimeoutError:
            decisions, dlq = phase()
            raise RuntimeError(
                f"only {len(decisions)} decisions + {len(dlq)} dead letters of {sent} "
                f"in {self.args.timeout:.0f}s"
            ) from None
        return phase()

    def warm_up(self) -> None:
        """Decide a small burst first (every partition, so every worker) and wait for it: the
        measured stream then meets warm engines and an assigned group."""
        n = self.args.warm_up
        if n <= 0:
            return
        events = self._events(f"{self.run_id}-warm-", n)
        start = end_offsets(self.bootstrap, self.topics.events)
        t0 = time.perf_counter()  # the workers decide while the events are being sent
        self._send(events)
        end = end_offsets(self.bootstrap, self.topics.events)
        self._wait_phase(f"{self.run_id}-warm-", n, start, end)
        secs = time.perf_counter() - t0
        line = f"   warm-up (not in the figures): {n} events sent and decided in {secs:.1f}s"
        print(line, flush=True)
        self.summary["warm_up"] = {"events": n}

    def stream(self) -> None:
        """The paced stream through `decisionflow produce` (offered load, latency), then a
        burst drained from a backlog (capacity)."""
        prefix = f"{self.run_id}-s-"
        start = end_offsets(self.bootstrap, self.topics.events)
        t0 = time.perf_counter()
        self.cli(
            "produce",
            "--source",
            str(self.held_csv),
            "--repeat",
            str(self.args.repeat),
            "--rate",
            str(self.args.rate),
            "--malformed",
            str(self.args.malformed),
            "--id-prefix",
            prefix,
        )
        end = end_offsets(self.bootstrap, self.topics.events)
        sent = sum(end[p] - start.get(p, 0) for p in end)
        reads, dlq = self._wait_phase(prefix, sent, start, end)
        elapsed = time.perf_counter() - t0
        decisions = [r.record for r in reads]
        event_times = [epoch_seconds(d["event_time"]) for d in decisions]
        latency = [(r.at - t) * 1000.0 for r, t in zip(reads, event_times, strict=True)]
        self.summary["stream"] = {
            "records_sent": sent,
            "decisions": len(decisions),
            "dead_letters": len(dlq),
            "unaccounted": sent - len(decisions) - len(dlq),
            "duplicates_read": self._reader().duplicates,
            "decisions_by_outcome": dict(Counter(d["decision"] for d in decisions)),
            "decisions_by_arm": dict(Counter(d["arm"] for d in decisions)),
            "dlq_by_reason": dict(Counter(d["reason"] for d in dlq)),
            "model_versions": sorted({d["model_version"] for d in decisions if d["model_version"]}),
            "with_reason_codes": sum(1 for d in decisions if d["reasons"]),
            "wall_seconds": round(elapsed, 2),
            "producer_rate_setting": self.args.rate,
            "offered": offered_rate(sent, event_times),
            "latency_ms": latency_summary(latency),
            "latency_measures": LATENCY_MEANING,
            "first_decided_at": min(d["decided_at"] for d in decisions) if decisions else None,
            "last_decided_at": max(d["decided_at"] for d in decisions) if decisions else None,
        }
        self.capacity()

    def capacity(self) -> None:
        """A burst is written to Kafka as fast as the client can; the workers drain it."""
        n = self.args.burst
        if n <= 0:
            return
        prefix = f"{self.run_id}-burst-"
        events = self._events(prefix, n)  # built before the clock
        start = end_offsets(self.bootstrap, self.topics.events)
        t0 = time.time()
        in_kafka_at = self._send(events)
        end = end_offsets(self.bootstrap, self.topics.events)
        reads, dlq = self._wait_phase(prefix, n, start, end)
        cap = capacity([r.at for r in reads], in_kafka_at)
        cap.update(
            {
                "events": n,
                "dead_letters": len(dlq),
                "burst_send_seconds": round(in_kafka_at - t0, 3),
                "measures": "decisions read committed / time while the workers had a backlog",
            }
        )
        self.summary["capacity"] = cap
        print(
            f"   burst of {n} events in Kafka in {in_kafka_at - t0:.2f}s; "
            f"capacity {cap['decisions_per_s']} decisions/s"
            + ("" if cap["backlog"] else " (no backlog built up: a lower bound)"),
            flush=True,
        )

    def outcomes_and_sink(self) -> None:
        self.cli(
            "outcomes",
            "--source",
            str(self.held_csv),
            "--share",
            str(self.args.outcome_share),
            "--seed",
            "1",
        )
        self.cli("sink", "--until-idle", "4")

    def evaluate(self) -> None:
        started = time.time() - 1
        run = self._airflow().run(DAG_EVALUATE, {})
        print(f"   evaluate DAG run {run['run_id']}: {run['state']}")
        if "success" not in run["state"]:
            raise RuntimeError(f"evaluate DAG failed:\n{run['log'][-4000:]}")
        # this run's reports (the home keeps earlier runs' too)
        written = [p for p in paths.reports_dir().rglob("*") if p.stat().st_mtime >= started]
        self.summary["reports"] = sorted(str(p) for p in written if p.suffix in {".html", ".csv"})
        metrics = sorted(p for p in written if p.name == "metrics.json")
        if metrics:
            self.summary["live_quality"] = json.loads(metrics[-1].read_text()).get("verdict")

    def stop_workers(self) -> None:
        """Warm shutdown of every worker side by side (SIGKILL after 90 s)."""
        stop_all(self.workers, 90)
        self.workers = []

    def close_clients(self) -> None:
        """Close the demo's own Kafka reader and producer, and its Airflow child."""
        if self.airflow is not None:
            self.airflow.close()
            self.airflow = None
        if self.reader is not None:
            self.reader.close()
            self.reader = None
        if self.producer is not None:
            self.producer.close()
            self.producer = None

    # ------------------------------------------------------------------ summary

    def print_summary(self) -> None:
        s = self.summary
        st = s.get("stream", {})
        lines = [
            "",
            "================ decisionflow demo summary ================",
            f"run {s['run_id']}  (files in {self.dir})",
            f"events sent      {st.get('records_sent')}  (decided {st.get('decisions')}, "
            f"dead-lettered {st.get('dead_letters')}, unaccounted {st.get('unaccounted')}, "
            f"read twice {st.get('duplicates_read')})",
            f"decisions        {st.get('decisions_by_outcome')}",
            f"dead letters     {st.get('dlq_by_reason')}",
            *measurement_lines(st, s.get("capacity"), self.args.workers, self.args.rate),
            f"champion         {s.get('champion')}",
            f"live quality     {s.get('live_quality')}",
            "reports          "
            + "\n                 ".join(r for r in s.get("reports", []) if r.endswith(".html"))
            or "-",
            "stage timings    " + ", ".join(f"{k} {v:.0f}s" for k, v in self.timings.items()),
            "next             .venv/bin/decisionflow worker --name w1   (decides with the "
            "demo's champion)",
            "                 .venv/bin/decisionflow models list",
            "Airflow UI       make airflow   (then http://127.0.0.1:18080, user admin)",
            "Flower           .venv/bin/celery -A workers.celery_app flower "
            "--address=127.0.0.1 --port=5555",
            "===========================================================",
        ]
        print("\n".join(lines), flush=True)
        (self.dir / "summary.json").write_text(
            json.dumps({**s, "timings": self.timings}, indent=2, default=str)
        )


def _report_paths(summary: dict[str, Any]) -> list[str]:
    """The HTML reports, or the CSV tables when there is no HTML."""
    reports: list[str] = summary.get("reports", [])
    html = [r for r in reports if r.endswith(".html")]
    return html or reports


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """ROC-AUC, PR-AUC and F1 of the registry's recorded holdout metrics."""
    full = metrics.get("full", metrics)
    at = full.get("at_threshold") or full.get("at_half") or {}
    return {
        "roc_auc": round(full.get("roc_auc") or float("nan"), 4),
        "pr_auc": round(full.get("pr_auc") or float("nan"), 4),
        "f1": round(at.get("f1") or float("nan"), 4),
        "n": full.get("n"),
    }


def build_parser() -> argparse.ArgumentParser:
    """The demo's command line."""
    p = argparse.ArgumentParser(
        prog="python -m devtools.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--home", default=None, help="put registry, reports, Airflow... here (default: var/)"
    )
    p.add_argument("--run-id", default=None)
    p.add_argument("--topic-prefix", default="", help="use <prefix>events etc. (tests)")
    p.add_argument("--database-url", default=None, help="store URL (default: the stack's)")
    p.add_argument("--families", nargs="+", default=["logreg", "hgb", "torch_mlp"])
    p.add_argument("--held-back", type=float, default=0.25, help="share of rows streamed")
    p.add_argument("--repeat", type=int, default=4, help="stream the held-back rows N times")
    p.add_argument("--rate", type=float, default=1500.0, help="events/s; 0 = flat out")
    p.add_argument("--malformed", type=float, default=0.02)
    p.add_argument(
        "--warm-up", type=int, default=200, help="events decided before anything is measured"
    )
    p.add_argument(
        "--burst",
        type=int,
        default=10_000,
        help="events of the capacity burst (written first, then drained); 0 = no burst",
    )
    p.add_argument("--outcome-share", type=float, default=0.9)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--airflow-port", type=int, default=18080)
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--keep", action="store_true", help="leave the workers running")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns a process exit code."""
    args = build_parser().parse_args(argv)
    demo = Demo(args)
    stages: list[tuple[str, Callable[[], None]]] = [
        ("1 stack", demo.check_stack),
        ("2 data split", demo.split_data),
        ("3 retrain DAG (Airflow) -> first champion", demo.retrain),
        (
            "4 start decision workers (ready: loop started, group stable, warm-up decided)",
            demo.start_workers,
        ),
        ("5 stream held-back rows + malformed events, then a capacity burst", demo.stream),
        ("6 outcomes -> sink -> store", demo.outcomes_and_sink),
        ("7 evaluate DAG -> reports", demo.evaluate),
    ]
    try:
        for name, run in stages:
            with demo.stage(name):
                run()
    finally:
        demo.close_clients()
        if not args.keep:
            demo.stop_workers()
    demo.print_summary()
    if args.keep:
        print(
            f"workers left running (pids {[w.proc.pid for w in demo.workers]}); "
            "stop them with kill -TERM, the stack with `make stack-down`"
        )
    return 0 if demo.summary.get("stream", {}).get("unaccounted") == 0 else 1


if __name__ == "__main__":  # pragma: no cover - entry point
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
