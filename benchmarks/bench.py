"""The benchmark's phases on the local stack: :class:`Bench` runs them into one results dict.

See :mod:`benchmarks.run` for the phase list and :mod:`benchmarks.phase` for how one
streaming phase is started, warmed up and timed.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from benchmarks.harness import Child, OutputReader, burst_produce, stage_snapshot, stage_summary
from benchmarks.phase import BASE_BATCH, BASE_WAIT_MS, After, PhaseRunner
from benchmarks.soak import paced_stream
from benchmarks.targets import workers_rate
from devtools.launch import free_port
from workers.settings import Topics

__all__ = ["Bench"]

SOAK_IDS = "soak-load-"  # the soak pool's event ids (renamed per cycle: benchmarks.soak); never
# the warm-up burst's ("soak-<i>"): a claimed id is a duplicate, not a decision


class Bench(PhaseRunner):
    """The phases (methods named as in :data:`benchmarks.run.PHASES`)."""

    def measure_sizes(self) -> None:
        """Mean event and decision sizes (the ceiling sends decision-sized records)."""
        from benchmarks.scoring import make_engine
        from workers.kafka_client import RawRecord

        events = self.src.make("size-", 500)
        engine = make_engine(self.registry, "cpu")
        topics = Topics()
        try:
            out = engine.process([RawRecord("t", 0, i, k, v) for i, (k, v) in enumerate(events)])
            sizes = [len(v) for t, _k, v in out.records(topics) if t == topics.decisions]
        finally:
            engine.close()
        self.value_bytes = int(sum(sizes) / max(len(sizes), 1)) or 900
        self.res["message_bytes"] = {
            "event_mean": int(sum(len(v) for _, v in events) / len(events)),
            "decision_mean": self.value_bytes,
        }

    # ------------------------------------------------------------------ phases

    def warm_broker(self) -> None:
        """An untimed ceiling burst before the first measured phase: a freshly started
        broker JIT-compiles its produce, fetch and transaction paths during its first few
        hundred thousand records (right after a restart the confluent ceiling loop ran at 57k
        ev/s with the broker at 15.8 us of CPU per event, 81k at 9.6 us in the next burst)."""
        n = self.sizes.get("broker_warm", 0)
        if n <= 0:
            return
        client = self.clients[0]

        def start(topics: Topics, group: str) -> list[Child]:
            return self._ceiling_loop(topics, group, client)

        print(f"[bench] broker warm-up: {n} events, untimed ({client} ceiling loop)", flush=True)
        out = self._phase("warm-broker", start, 1, n)
        self.res["broker_warmup"] = {k: out.get(k) for k in ("events", "seconds", "rate", "cpu")}

    def _ceiling_loop(self, topics: Topics, group: str, client: str) -> list[Child]:
        env = self._worker_env(topics, group, client)
        cmd = [
            sys.executable, "-m", "benchmarks.loops", "ceiling", "--client", client,
            "--value-bytes", str(self.value_bytes), "--name", group,
        ]  # fmt: skip
        return [self.run.start(group, cmd, env)]

    def ceiling(self) -> None:
        """Per client: the EOS consume -> produce loop, 1 process, the workers' transactions."""
        n = self.sizes["ceiling"]
        for client in self.clients:

            def start(topics: Topics, group: str, c: str = client) -> list[Child]:
                return self._ceiling_loop(topics, group, c)

            print(f"[bench] ceiling {client}", flush=True)
            out = self._phase(f"ceil-{client}", start, 1, n)
            txn = "a transaction per batch" if self.txn <= 0 else f"transactions of {self.txn}"
            self.res["ceiling"][client] = {
                **out,
                "client": client,
                "label": f"ceiling: {client}, EOS ({txn}), 1 process",
            }
            self._say(f"ceiling {client}", out, client)

    def workers(self) -> None:
        """Real workers on each client, 1 then 2 processes; latency + profile ride on the
        default client's 1-worker phase."""
        for client in self.clients:
            for count in (1, 2):
                self._workers_phase(client, count)

    def _workers_phase(self, client: str, count: int) -> None:
        port = 0
        after: After | None = None
        if client == self.default and count == 1:
            port = free_port()
            after = self._after_default_w1(port)
        print(f"[bench] workers {client} x{count}", flush=True)
        out = self._phase(
            f"w-{client}-{count}",
            self._workers(count, client, metrics_port=port),
            count,
            self.sizes["workers"],
            after,
            track_ids=after is not None,
        )
        self.res["workers"][f"{client}_{count}"] = {
            **out,
            "client": client,
            "workers": count,
            "label": f"real worker{'s' if count > 1 else ''} x{count} ({client}, EOS)",
        }
        self._say(f"workers {client} x{count}", out, client)
        self._memory(f"{client} x{count}", out)

    def _after_default_w1(self, port: int) -> After:
        def after(
            topics: Topics, reader: OutputReader, children: list[Child], rate: float | None
        ) -> None:
            assert rate is not None
            if "latency" in self.phases:
                self._latency_points(topics, reader, rate, port)
            self.res["profile"] = self._profile(topics, reader, children[0], rate)

        return after

    def latency(self) -> None:
        """p99 by load on the default client (runs its own 1-worker phase when the workers
        phase did not already measure it)."""
        if (self.res.get("latency") or {}).get("points"):
            return
        self._workers_phase(self.default, 1)

    def _latency_points(
        self, topics: Topics, reader: OutputReader, max_rate: float, port: int
    ) -> None:
        points: list[dict[str, Any]] = []
        self.res["latency"] = {
            "client": self.default,
            "max_rate": max_rate,
            "max_wait_ms": BASE_WAIT_MS,
            "config": f"1 worker, {self.default}, max_batch {BASE_BATCH}, max_wait "
            f"{BASE_WAIT_MS} ms, transaction_max_events {self.txn}",
            "points": points,
        }
        for pct in self.sizes["latency_pcts"]:
            rate = max_rate * pct / 100
            print(f"[bench] latency at {pct} % of {max_rate:,.0f} ev/s", flush=True)
            before = stage_snapshot(port)
            lat = self._open_loop(topics, reader, rate, self.sizes["latency_s"], f"lat{pct}")
            stages = stage_summary(before, stage_snapshot(port))
            points.append({**lat, "load_pct": pct, "stages": stages})

    def _profile(
        self, topics: Topics, reader: OutputReader, child: Child, rate: float
    ) -> dict[str, Any]:
        """py-spy on the worker while it drains a fresh burst (not during measured phases)."""
        from benchmarks.profile import record

        secs = self.sizes["profile_s"]
        n = int(rate * secs * 1.5)
        before = reader.count
        burst_produce(self.run.bootstrap, topics.events, self.src.make("prof-", n))
        at_start = reader.count
        prof = record(child.proc.pid, secs, self.run.out_dir / "profile-worker.txt")
        prof["events"] = reader.count - at_start  # decided (read committed) while sampling
        reader.wait_for(before + n, 300)
        prof["seconds"] = secs
        prof["client"] = self.default
        return prof

    def sweep(self) -> None:
        """Per (max_batch, max_wait_ms, transaction_max_events): burst throughput, then
        p50/p99 at one fixed open-loop rate, 1 worker on the default client."""
        base = workers_rate(self.res, self.default, 1)
        load = 0.5 * base if base else float(self.sizes["sweep_fallback_rate"])
        points: list[dict[str, Any]] = []
        self.res["sweep"] = {"client": self.default, "load_rate": load, "points": points}
        for batch, wait, txn in self.sizes["sweep"]:
            point: dict[str, Any] = {"batch": batch, "wait_ms": wait, "txn_max_events": txn}
            points.append(point)

            def after(
                topics: Topics,
                reader: OutputReader,
                _c: list[Child],
                rate: float | None,
                p: dict[str, Any] = point,
                tag: str = f"sw{batch}x{wait}x{txn}",
            ) -> None:
                if rate is None or rate < load * 1.1:  # open loop would only build a backlog
                    p["note"] = "capacity below the fixed load rate: latency not measured"
                    return
                lat = self._open_loop(topics, reader, load, self.sizes["sweep_latency_s"], tag)
                p.update({k: lat[k] for k in ("p50", "p99", "achieved_rate")})

            print(f"[bench] sweep batch={batch} wait={wait} txn={txn}", flush=True)
            try:
                out = self._phase(
                    f"sw-{batch}-{wait}-{txn}",
                    self._workers(1, self.default, batch, wait, txn),
                    1,
                    self.sizes["sweep_events"],
                    after,
                    track_ids=True,
                )
                point["rate"] = out["rate"]
            except Exception as exc:  # one point failing must not lose the others
                point["note"] = f"failed: {type(exc).__name__}: {exc}"[:200]

    def soak(self) -> None:
        """1 worker on the default client at 50 % of its 1-worker maximum for ``soak_s``;
        RSS after the warm-up burst, every ``soak_tick_s`` and after the backlog drained."""
        known = workers_rate(self.res, self.default, 1)
        n = self.sizes["soak_warm_events"] if known else self.sizes["workers"]
        print(f"[bench] soak {self.sizes['soak_s']:.0f} s ({self.default})", flush=True)
        out = self._phase("soak", self._workers(1, self.default), 1, n, self._soak_load(known))
        self._memory(f"soak {self.default} x1", out)

    def _soak_load(self, known: float | None) -> After:
        def after(
            topics: Topics, reader: OutputReader, children: list[Child], rate: float | None
        ) -> None:
            max_rate = known or rate
            assert max_rate is not None
            target = 0.5 * max_rate
            seconds, tick_s = float(self.sizes["soak_s"]), float(self.sizes["soak_tick_s"])
            pool = self.src.make(SOAK_IDS, min(max(int(target * tick_s), 1000), 100_000))
            samples: list[dict[str, Any]] = []
            soak = self.res["soak"] = {
                "client": self.default,
                "max_rate": max_rate,
                "target_rate": target,
                "seconds": seconds,
                "tick_s": tick_s,
                "warm_burst_rate": rate,
                "samples": samples,
            }
            before = reader.count

            def sample(t: float, sent: int) -> None:
                for c in children:
                    c.check()
                samples.append(
                    {
                        "t_s": round(t, 1),
                        "rss_mib": [round(c.rss_mib(), 1) for c in children],
                        "sent": sent,
                        "backlog": sent - (reader.count - before),
                    }
                )

            sample(0.0, 0)
            t0 = time.perf_counter()
            sent, achieved = paced_stream(
                self.run.bootstrap,
                topics.events,
                pool,
                target,
                seconds,
                sample,
                tick_s,
                SOAK_IDS.encode(),
            )
            reader.wait_for(before + sent, max(180.0, seconds))
            sample(time.perf_counter() - t0, sent)
            soak.update({"sent": sent, "achieved_rate": achieved})

        return after

    def peer(self) -> None:
        """One Celery task per event: a dispatcher process plus a solo worker, same Redis."""

        def start(topics: Topics, group: str) -> list[Child]:
            env = self._worker_env(topics, group, self.default)
            queue = self.run.name("peer-q")
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
        out = self._phase("peer", start, 1, self.sizes["peer"])
        self.res["peer"] = {**out, "label": "peer: one Celery task per event (1 solo worker)"}

    def scoring(self) -> None:
        """In-process engine stages: seconds per batch of each stage, by batch size."""
        from benchmarks.scoring import run_scoring
        from workers.kafka_client import RawRecord

        print("[bench] engine stages in-process", flush=True)
        events = self.src.make("sc-", 5000)
        records = [RawRecord("t", 0, i, k, v) for i, (k, v) in enumerate(events)]
        self.res["scoring"] = run_scoring(
            self.registry,
            records,
            self.sizes["scoring_batches"],
            self.sizes["scoring_min_s"],
            self.sizes.get("scoring_rounds", 1),
        )

    def reasons(self) -> None:
        """Top-3 reason agreement, integrated gradients vs gradient x input (when the model
        and ``models.explain`` offer both)."""
        from benchmarks.reasons import reason_agreement

        print("[bench] reason-method agreement", flush=True)
        out = reason_agreement(self.registry)
        if out is None:
            print("[bench] reason agreement: not available in this tree, skipped", flush=True)
            return
        self.res["reasons"] = out

    def runtimes(self) -> None:
        """Rows/s per score runtime (native, onnx, int8; fp16/bf16 on CUDA) and batch size,
        with each variant's parity on held-out rows (in-process, no Kafka)."""
        from benchmarks.runtimes import run_runtimes

        print("[bench] runtime variants in-process", flush=True)
        self.res["runtimes"] = run_runtimes(
            self.registry, self.sizes["runtimes_min_s"], tuple(self.sizes["runtimes_batches"])
        )

    def api(self) -> None:
        """p50/p99 of ``POST /v1/decisions`` at stated request rates (:mod:`benchmarks.api`)."""
        from benchmarks.api import run_api_phase

        run_api_phase(self)
