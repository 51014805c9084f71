"""`make chaos`: the reliability drill, on its own local stack, with an independent checker.

It brings up a separate stack (``<home>/chaos/stack``, its own ports; 3 Kafka brokers by
default), trains a champion into a drill registry, starts two real decision workers and the
sink, and streams events (>= 20,000) with a poison corpus mixed in: every codec, NUL,
duplicate event ids, out-of-range values, far-off event times and the malformed corpus. While
events flow it kills workers with SIGKILL (restarted a second later), kills a Kafka broker
(the leader of events partition 0 on the 3-broker stack), and takes Redis and PostgreSQL away.

A ``read_committed`` reader written here with confluent-kafka (not the workers' code) checks
the outcome: sent / decided / dead-lettered / duplicates, lost and duplicated (both must be
0), every poison record in the DLQ, no stalled partition, every decision in the store, and the
output gap after each fault. The table is printed and kept in ``<home>/chaos/<run>/``.

    make chaos                          # 3 brokers
    make chaos CHAOS_ARGS="--brokers 1" # single broker: kill it and bring it back
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devtools.chaos_check import Accounting, Fault, Seen, account, output_gaps
from devtools.launch import ChildProcess, start_worker
from models import paths

__all__ = ["main"]

Action = Callable[[], None]


CODECS = ("gzip", "snappy", "lz4", "zstd")
PARTITIONS = 6
PORTS = {  # the drill's own stack, away from the test stack's ports
    "DECISIONFLOW_KAFKA_PORT": "39092",
    "DECISIONFLOW_KAFKA_CONTROLLER_PORT": "39093",
    "DECISIONFLOW_REDIS_PORT": "36379",
    "DECISIONFLOW_POSTGRES_PORT": "35432",
}


def log(msg: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------- the stack


class Stack:
    """``infra/stack`` on the drill's run dir and ports."""

    def __init__(self, run_dir: Path, brokers: int) -> None:
        self.run_dir = run_dir
        self.brokers = brokers
        self.env = {**os.environ, **PORTS, "DECISIONFLOW_RUN_DIR": str(run_dir)}

    def cmd(self, *args: str, check: bool = True) -> str:
        """Run ``infra/stack ARGS``; its output."""
        repo = paths.repo_root() or Path.cwd()
        proc = subprocess.run(
            [str(repo / "infra" / "stack"), *args], env=self.env, text=True, capture_output=True
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"infra/stack {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
        return proc.stdout

    def up(self) -> None:
        self.cmd("up", "--brokers", str(self.brokers))

    def addresses(self) -> dict[str, str]:
        """The clients' settings from the run dir's stack.env."""
        from dotenv import dotenv_values

        values = dotenv_values(self.run_dir / "stack.env")
        return {k: v for k, v in values.items() if v is not None}

    def pid(self, service: str) -> int:
        return int((self.run_dir / service / f"{service}.pid").read_text().split()[0])

    def kill(self, service: str, sig: signal.Signals) -> None:
        """Signal a Redis or PostgreSQL server (an outage)."""
        os.kill(self.pid(service), sig)


# --------------------------------------------------------------------------- the stream


@dataclass
class Sent:
    """What the producer had acknowledged, shared with the checker."""

    valid: dict[str, tuple[int, float]] = field(default_factory=dict)
    """event id -> (events partition, when sent)."""
    poison: dict[str, str] = field(default_factory=dict)
    """``topic/partition/offset`` -> kind, for records that must be dead-lettered."""
    repeats: dict[str, int] = field(default_factory=dict)
    compressed: dict[str, str] = field(default_factory=dict)
    """event id -> codec, for valid events sent compressed."""
    lock: threading.Lock = field(default_factory=threading.Lock)


def _poison(kind: str, base: dict[str, Any]) -> bytes:
    """One poison record of ``kind`` built from a valid event."""
    event = json.loads(json.dumps(base))
    event["event_id"] = "poison-" + uuid.uuid4().hex
    if kind == "nul":
        event["entity_id"] = "ent\u0000x"
    elif kind == "out_of_range":
        event["features"]["Amount"] = -1e308
    elif kind == "year_9999":
        event["event_time"] = "9999-12-31T23:59:59+00:00"
    elif kind == "year_0001":
        event["event_time"] = "0001-01-01T00:00:00+00:00"
    return json.dumps(event).encode()


class Producer:
    """Streams valid events at a rate, with poison records and repeats mixed in."""

    KINDS = ("nul", "out_of_range", "year_9999", "year_0001", "repeat", "malformed")

    def __init__(self, bootstrap: str, topic: str, run: str, n: int, rate: float) -> None:
        from confluent_kafka import Producer as KProducer

        self.topic, self.run, self.n, self.rate = topic, run, n, rate
        self.sent = Sent()
        conf = {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True}
        self._plain = KProducer({**conf, "linger.ms": 5})
        self._codecs = {c: KProducer({**conf, "compression.type": c}) for c in CODECS}
        self.done = threading.Event()

    def run_stream(self) -> None:
        from models.data import load_frame
        from models.spec import load_spec
        from workers.malformed import malformed_corpus
        from workers.producer import event_payload, events_from_frame

        spec = load_spec("credit_data")
        rows = list(events_from_frame(load_frame(spec), spec.feature_names, spec.entity_key.column))
        corpus = [raw for _, raw in malformed_corpus()]
        began = time.monotonic()
        for i in range(self.n):
            time.sleep(max(began + i / self.rate - time.monotonic(), 0.0))
            entity_id, features = rows[i % len(rows)]
            payload = event_payload(entity_id, features, event_id=f"{self.run}-{i}")
            value = json.dumps(payload).encode()
            producer = self._plain
            if i % 50 == 7:
                codec = CODECS[(i // 50) % len(CODECS)]
                producer = self._codecs[codec]
                with self.sent.lock:
                    self.sent.compressed[payload["event_id"]] = codec
            self._send(producer, entity_id, value, valid=payload["event_id"])
            if i % 200 == 100:
                kind = self.KINDS[(i // 200) % len(self.KINDS)]
                if kind == "repeat":
                    j = max(i - 150, 0)
                    e, f = rows[j % len(rows)]
                    again = event_payload(e, f, event_id=f"{self.run}-{j}")
                    with self.sent.lock:
                        self.sent.repeats[again["event_id"]] = (
                            self.sent.repeats.get(again["event_id"], 0) + 1
                        )
                    self._send(self._plain, e, json.dumps(again).encode())
                else:
                    raw = corpus[i % len(corpus)] if kind == "malformed" else _poison(kind, payload)
                    self._send(self._plain, entity_id, raw, poison=kind)
            if i % 500 == 0:
                for p in (self._plain, *self._codecs.values()):
                    p.poll(0)
        for p in (self._plain, *self._codecs.values()):
            p.flush(60)
            p.close()  # else they log connection errors for every broker once the stack stops
        self.done.set()

    def _send(
        self, producer: Any, key: str, value: bytes, valid: str | None = None, poison: str = ""
    ) -> None:
        sent = self.sent

        def delivered(err: Any, msg: Any) -> None:
            if err is not None:
                log(f"delivery failed ({err}); the drill counts only acknowledged events")
                return
            with sent.lock:
                if valid is not None:
                    sent.valid[valid] = (msg.partition(), time.monotonic())
                elif poison:
                    sent.poison[f"{msg.topic()}/{msg.partition()}/{msg.offset()}"] = poison

        while True:
            try:
                producer.produce(self.topic, value=value, key=key.encode(), on_delivery=delivered)
                return
            except BufferError:
                producer.poll(0.1)


class Checker:
    """An independent read_committed reader of decisions, dead letters and duplicates."""

    def __init__(self, bootstrap: str, topics: dict[str, str], sent: Sent) -> None:
        from confluent_kafka import Consumer

        self.topics, self.sent = topics, sent
        self._c = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"chaos-checker-{uuid.uuid4().hex[:8]}",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        self._c.subscribe([topics["decisions"], topics["dlq"], topics["duplicates"]])
        self.decided: list[tuple[str, float]] = []
        self.dead: list[dict[str, Any]] = []
        self.duplicates: list[dict[str, Any]] = []
        self._stop = threading.Event()

    def run(self) -> None:
        while not self._stop.is_set():
            for m in self._c.consume(1000, 0.2):
                if m.error() is not None or m.value() is None:
                    continue
                rec, now = json.loads(m.value() or b"{}"), time.monotonic()
                if m.topic() == self.topics["decisions"]:
                    self.decided.append((rec["event_id"], now))
                elif m.topic() == self.topics["dlq"]:
                    self.dead.append(rec)
                else:
                    self.duplicates.append(rec)
        self._c.close()

    def stop(self) -> None:
        self._stop.set()

    def total(self) -> int:
        return len(self.decided) + len(self.dead) + len(self.duplicates)


def _position(dead_letter: dict[str, Any]) -> str:
    """``topic/partition/offset`` of the record a dead letter came from."""
    d = dead_letter
    return f"{d.get('source_topic')}/{d.get('source_partition')}/{d.get('source_offset')}"


# --------------------------------------------------------------------------- the drill


@dataclass
class Drill:
    args: argparse.Namespace
    run: str = field(default_factory=lambda: time.strftime("%Y%m%dT%H%M%S"))
    faults: list[Fault] = field(default_factory=list)
    produced_until: float = 0.0
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.dir = paths.home() / "chaos" / self.run
        self.dir.mkdir(parents=True, exist_ok=True)
        self.stack = Stack(paths.home() / "chaos" / "stack", self.args.brokers)
        self.workers: dict[str, ChildProcess] = {}
        self.sink: ChildProcess | None = None

    # ---------------------------------------------------------------- set-up

    def topics(self) -> dict[str, str]:
        names = ("events", "decisions", "shadow", "dlq", "outcomes", "duplicates")
        return {t: f"chaos-{self.run}.{t}" for t in names}

    def create_topics(self, bootstrap: str) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

        rf = self.args.brokers
        config = {"min.insync.replicas": str(min(2, rf))}
        admin = AdminClient({"bootstrap.servers": bootstrap})
        new = [
            NewTopic(t, 1 if k == "dlq" else PARTITIONS, rf, config=config)
            for k, t in self.topics().items()
        ]
        for future in admin.create_topics(new).values():
            future.result(60)

    def make_registry(self) -> Path:
        from models.data import holdout_split, load_frame
        from models.registry import ModelRegistry
        from models.spec import load_spec
        from models.training import train_family

        spec = load_spec("credit_data")
        train, _ = holdout_split(load_frame(spec), spec, 0.25, seed=1)
        root = self.dir / "registry"
        reg = ModelRegistry(root)
        version = reg.register(train_family("logreg", train, spec, {"C": 1.0}, seed=1))
        reg.promote(spec.name, version, "champion", reason="chaos drill")
        return root

    def env(self, registry: Path) -> dict[str, str]:
        topics = self.topics()
        return {
            **self.stack.env,
            **self.stack.addresses(),
            "DECISIONFLOW_REGISTRY_URL": str(registry),
            "DECISIONFLOW_GROUP_ID": f"chaos-{self.run}",
            "DECISIONFLOW_SINK_GROUP_ID": f"chaos-sink-{self.run}",
            "DECISIONFLOW_TRANSACTIONAL_ID_PREFIX": f"chaos-{self.run}",
            "DECISIONFLOW_DEVICE": "cpu",
            "PYTHONUNBUFFERED": "1",
            **{f"DECISIONFLOW_TOPICS__{k.upper()}": v for k, v in topics.items()},
        }

    def start_worker(self, name: str, env: dict[str, str]) -> None:
        self.workers[name] = start_worker(name, env, self.dir / "logs")

    # ---------------------------------------------------------------- faults

    def at(self, t0: float, offset: float) -> None:
        time.sleep(max(t0 + offset - time.monotonic(), 0.0))

    def kill_worker(self, name: str, env: dict[str, str]) -> None:
        # one fault at a time: every worker must be deciding before the next kill (a restart
        # took up to 40 s on this loaded 2-core host; a kill during another worker's restart
        # would measure two faults at once)
        since = time.monotonic()
        for worker in self.workers.values():
            worker.wait_for_log("decision loop started", 180)
        waited = time.monotonic() - since
        if waited > 1:
            log(f"waited {waited:.0f}s for every worker to be deciding before killing {name}")
        t = time.monotonic()
        self.workers[name].kill()
        time.sleep(1.0)
        self.start_worker(name, env)
        n = sum(f.name.startswith("worker kill") for f in self.faults) + 1
        self.faults.append(Fault(f"worker kill -9 #{n} ({name})", t, t, 10.0))
        log(f"killed {name} with SIGKILL; restarted it")

    def kill_broker(self, topic: str) -> None:
        if self.args.brokers > 1:
            node = int(self.stack.cmd("leader", topic, "0").strip().split()[-1])
        else:
            node = 1
        t = time.monotonic()
        self.stack.cmd("kill-broker", str(node))
        log(f"killed broker {node} with SIGKILL (leader of {topic}[0])")
        time.sleep(self.args.broker_down_s)
        self.stack.cmd("start-broker", str(node))
        back = time.monotonic()
        log(f"broker {node} back after {back - t:.0f}s")
        if self.args.brokers > 1:  # the others lead on: output must not wait for its return
            self.faults.append(Fault(f"leader broker {node} kill -9", t, t, 15.0))
        else:
            self.faults.append(Fault("broker kill -9 (measured from its return)", t, back, 15.0))

    def outage(self, service: str, sig: signal.Signals) -> None:
        t = time.monotonic()
        self.stack.kill(service, sig)
        log(f"{service} down ({sig.name})")
        time.sleep(self.args.outage_s)
        self.stack.cmd("up")
        back = time.monotonic()
        log(f"{service} back after {back - t:.0f}s")
        self.faults.append(Fault(f"{service} outage (measured from its return)", t, back, 15.0))

    # ---------------------------------------------------------------- run

    def run_drill(self) -> int:
        log(f"stack: {self.args.brokers} broker(s) under {self.stack.run_dir}")
        self.stack.up()
        addr = self.stack.addresses()
        bootstrap = addr["DECISIONFLOW_KAFKA_BOOTSTRAP_SERVERS"]
        self.create_topics(bootstrap)
        env = self.env(self.make_registry())
        for name in ("chaos-w1", "chaos-w2"):
            self.start_worker(name, env)
        for w in self.workers.values():
            w.wait_for_log("decision loop started", 180)
        self.sink = ChildProcess(
            "chaos-sink", [sys.executable, "-m", "workers.cli", "sink"], env, self.dir / "logs"
        )
        topics = self.topics()
        producer = Producer(bootstrap, topics["events"], self.run, self.args.events, self.args.rate)
        checker = Checker(bootstrap, topics, producer.sent)
        threads = [
            threading.Thread(target=producer.run_stream, daemon=True),
            threading.Thread(target=checker.run, daemon=True),
        ]
        for th in threads:
            th.start()
        t0 = time.monotonic()
        log(f"streaming {self.args.events} events at {self.args.rate:.0f}/s with poison mixed in")
        schedule = self.schedule(env, topics["events"])
        for offset, action in schedule:
            self.at(t0, offset)
            action()
        producer.done.wait()
        self.produced_until = time.monotonic()
        log("all events sent; waiting until every one is accounted for")
        sent = producer.sent
        expected = len(sent.valid) + len(sent.poison) + sum(sent.repeats.values())
        deadline = time.monotonic() + self.args.settle_s
        while checker.total() < expected and time.monotonic() < deadline:
            time.sleep(1)
        time.sleep(3)  # anything arriving late would be a duplicate: give it the chance
        checker.stop()
        threads[1].join(10)
        result = self.verdict(producer.sent, checker, env)
        self.shutdown()
        return 0 if result else 1

    def schedule(self, env: dict[str, str], events_topic: str) -> list[tuple[float, Action]]:
        """When each fault happens, in seconds from the first event."""
        kills = self.args.worker_kills
        plan: list[tuple[float, Action]] = []
        for k in range(kills):
            name = f"chaos-w{1 + k % 2}"
            # 25 s apart: a restart takes 5-25 s on a loaded 2-core host, and overlapping kills
            # would measure two faults at once
            plan.append((6 + 25 * k, functools.partial(self.kill_worker, name, env)))
        t = 6 + 25 * kills
        plan.append((t, lambda: self.kill_broker(events_topic)))
        t += self.args.broker_down_s + 30  # start-broker waits for a healthy cluster
        plan.append((t, lambda: self.outage("redis", signal.SIGKILL)))
        t += self.args.outage_s + 12
        plan.append((t, lambda: self.outage("postgres", signal.SIGQUIT)))
        return plan

    # ---------------------------------------------------------------- verdict

    def verdict(self, sent: Sent, checker: Checker, env: dict[str, str]) -> bool:
        acc = account(
            sent.valid,
            sent.poison,
            sent.repeats,
            [e for e, _ in checker.decided],
            [_position(d) for d in checker.dead],
            [d["event_id"] for d in checker.duplicates],
        )
        decisions = [Seen(e, sent.valid[e][0], at) for e, at in checker.decided if e in sent.valid]
        pending = [Seen(e, p, at) for e, (p, at) in sent.valid.items()]
        gaps = output_gaps(decisions, pending, self.faults, self.produced_until)
        reasons: dict[str, set[str]] = {}
        for d in checker.dead:
            key = _position(d)
            if key in sent.poison:
                reasons.setdefault(sent.poison[key], set()).add(str(d.get("reason")))
        decided = {e for e, _ in checker.decided}
        for event_id, codec in sent.compressed.items():
            reasons.setdefault(f"{codec}-compressed valid event", set()).add(
                "decided" if event_id in decided else "NOT decided"
            )
        stalled = self.stalled_partitions(env)
        stored = self.stored_decisions(env, acc.decided)
        report = self.report(acc, gaps, reasons, stalled, stored)
        print(report, flush=True)
        (self.dir / "report.md").write_text(report)
        met = all(
            g is not None and (f.target_s is None or g <= f.target_s)
            for f, g in ((f, gaps[f.name]) for f in self.faults)
        )
        return acc.ok and not stalled and stored == acc.decided and met

    def stalled_partitions(self, env: dict[str, str]) -> list[str]:
        """Events partitions whose committed offset (workers' group) is short of the log end."""
        from confluent_kafka import Consumer, TopicPartition

        topic = self.topics()["events"]
        c = Consumer(
            {
                "bootstrap.servers": env["DECISIONFLOW_KAFKA_BOOTSTRAP_SERVERS"],
                "group.id": env["DECISIONFLOW_GROUP_ID"],
                "enable.auto.commit": False,
            }
        )
        try:
            parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
            committed = c.committed(parts, timeout=30)
            out = []
            for tp in committed:
                _, high = c.get_watermark_offsets(tp, timeout=30)
                if tp.offset < high:
                    out.append(f"{topic}[{tp.partition}] at {tp.offset} of {high}")
            return out
        finally:
            c.close()

    def stored_decisions(self, env: dict[str, str], expected: int, wait_s: float = 120) -> int:
        """Decisions of this run in the store, once the sink has caught up (or given up)."""
        from sqlalchemy import create_engine, text

        db = create_engine(env["DECISIONFLOW_DATABASE_URL"])
        deadline, n = time.monotonic() + wait_s, -1
        try:
            while time.monotonic() < deadline:
                try:
                    with db.connect() as conn:
                        n = int(
                            conn.execute(
                                text("SELECT count(*) FROM decisions WHERE event_id LIKE :p"),
                                {"p": f"{self.run}-%"},
                            ).scalar_one()
                        )
                except Exception as exc:  # the sink may not have created its tables yet
                    log(f"store not readable yet: {type(exc).__name__}")
                if n >= expected:
                    break
                time.sleep(2)
        finally:
            db.dispose()
        return n

    def report(
        self,
        acc: Accounting,
        gaps: dict[str, float | None],
        reasons: dict[str, set[str]],
        stalled: list[str],
        stored: int,
    ) -> str:
        lines = [
            f"## Chaos drill {self.run}: {self.args.brokers} broker(s), "
            f"{self.args.events} events at {self.args.rate:.0f}/s "
            f"({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
            "",
            "| records sent | decided | dead-lettered | duplicates recorded | lost | duplicated "
            "| poison missed | valid in DLQ | stalled partitions | decisions in store |",
            "|---|---|---|---|---|---|---|---|---|---|",
            f"| {acc.sent} | {acc.decided} | {acc.dead_lettered} | {acc.duplicates} | "
            f"{len(acc.lost)} | {len(acc.duplicated)} | {len(acc.poison_missed)} | "
            f"{len(acc.unexpected_dlq)} | {len(stalled)} | {stored} |",
            "",
            "| fault | output gap (s) | target (s) | met |",
            "|---|---|---|---|",
        ]
        for f in self.faults:
            g = gaps[f.name]
            shown = "never resumed" if g is None else f"{g:.1f}"
            ok = g is not None and (f.target_s is None or g <= f.target_s)
            lines.append(f"| {f.name} | {shown} | {f.target_s or '-'} | {'yes' if ok else 'NO'} |")
        lines += ["", "| input kind | outcome (DLQ reason) |", "|---|---|"]
        lines += [f"| {k} | {', '.join(sorted(v))} |" for k, v in sorted(reasons.items())]
        for title, items in (
            ("lost", acc.lost),
            ("duplicated", acc.duplicated),
            ("poison missed", acc.poison_missed),
            ("valid in DLQ", acc.unexpected_dlq),
            ("stalled", stalled),
        ):
            if items:
                lines.append(f"\n{title}: {items[:10]}{' ...' if len(items) > 10 else ''}")
        return "\n".join(lines) + "\n"

    def shutdown(self) -> None:
        for w in self.workers.values():
            w.stop(30)
        if self.sink is not None:
            self.sink.stop(30)
        if not self.args.keep_stack:
            self.stack.cmd("down", check=False)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="chaos", description=__doc__.split("\n\n")[0])
    p.add_argument("--brokers", type=int, default=3, choices=(1, 3))
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument("--rate", type=float, default=100.0, help="events/s")
    p.add_argument("--worker-kills", type=int, default=5)
    p.add_argument("--broker-down-s", type=float, default=10.0)
    p.add_argument("--outage-s", type=float, default=10.0)
    p.add_argument("--settle-s", type=float, default=240.0)
    p.add_argument("--keep-stack", action="store_true", help="leave the drill's stack running")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the drill; exit status 0 only when every check passed."""
    args = build_parser().parse_args(argv)
    drill = Drill(args)
    try:
        return drill.run_drill()
    except BaseException:
        drill.shutdown()
        raise


if __name__ == "__main__":
    sys.exit(main())
