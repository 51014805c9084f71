"""Running one streaming phase of the benchmark: processes, group, warm-up, burst, loads.

Every streaming phase has its own topics, group, transactional ids and Celery queue; it starts
its processes, waits until their group is Stable, warms them up with 200 events, then times a
burst (throughput = N / (time the N-th committed output was read - send start)) and may run
an open-loop load on the same processes (latency, sweep, soak) before stopping them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.cpu import CpuMeter, with_descendants
from benchmarks.harness import (
    BurstProducer,
    Child,
    EventSource,
    OutputReader,
    Run,
    no_gc_pauses,
    paced_produce,
    percentiles,
)
from benchmarks.targets import ceiling_rate, fmt, ratio
from workers.settings import Topics

__all__ = ["BASE_BATCH", "BASE_WAIT_MS", "PARTITIONS", "After", "PhaseRunner", "SweepPoint"]

PARTITIONS = 6
WARM = 200
BASE_BATCH, BASE_WAIT_MS = 500, 50  # the workers' defaults (WorkerSettings)
SweepPoint = tuple[int, int, int]  # (max_batch_size, max_wait_ms, transaction_max_events)
After = Callable[[Topics, OutputReader, list[Child], float | None], None]
"""Runs on a phase's processes after its burst: (topics, reader, children, burst rate)."""


class PhaseRunner:
    """Starts and times streaming phases; collects one result object (``self.res``)."""

    def __init__(
        self,
        run: Run,
        registry: Path,
        sizes: dict[str, Any],
        clients: Sequence[str],
        *,
        default_client: str,
        phases: Sequence[str],
        transaction_max_events: int = 0,
    ) -> None:
        self.run = run
        self.registry = registry
        self.sizes = sizes
        self.clients = list(clients)
        self.default = default_client
        self.phases = list(phases)
        self.txn = transaction_max_events
        self.src = EventSource()
        self.value_bytes = 900
        self.res: dict[str, Any] = {
            "ceiling": {},
            "workers": {},
            "memory": [],
            "default_client": default_client,
            "transaction_max_events": transaction_max_events,
        }

    def _phase(
        self,
        phase: str,
        start: Callable[[Topics, str], list[Child]],
        members: int,
        n: int,
        after: After | None = None,
        track_ids: bool = False,
    ) -> dict[str, Any]:
        """Start processes, wait for the group, warm up, burst ``n`` events (none when 0) and
        time them, then ``after(topics, reader, children, burst rate)``."""
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
            out: dict[str, Any] = {
                "events": n,
                "group_join_seconds": round(join_s, 1),
                "rss_start_mib": [c.rss_mib() for c in children],
            }
            if n > 0:
                events = self.src.make(f"{phase}-", n)
                cpu = CpuMeter.for_phase(lambda: with_descendants(c.proc.pid for c in children))
                cpu.start()
                t0 = time.perf_counter()
                out["produce_seconds"] = round(producer.send(topics.events, events), 3)
                del events
                t_end = reader.wait_for(WARM + n, max(180.0, n / 100), alive)
                out["cpu"] = cpu.stop(n)
                out["seconds"] = round(t_end - t0, 3)
                out["rate"] = n / (t_end - t0)
            if after is not None:
                after(topics, reader, children, out.get("rate"))
            out["rss_end_mib"] = [c.rss_mib() for c in children]
            return out
        finally:
            producer.close()
            reader.close()
            for c in children:
                c.stop()
            run.children = [c for c in run.children if c not in children]
            run.drop_claims(group)

    def _worker_env(
        self,
        topics: Topics,
        group: str,
        client: str,
        batch: int = BASE_BATCH,
        wait: int = BASE_WAIT_MS,
        txn: int | None = None,
        metrics_port: int = 0,
    ) -> dict[str, str]:
        return self.run.env(
            topics,
            group,
            self.registry,
            DECISIONFLOW_KAFKA_CLIENT=client,
            DECISIONFLOW_MAX_BATCH_SIZE=str(batch),
            DECISIONFLOW_MAX_WAIT_MS=str(wait),
            DECISIONFLOW_TRANSACTION_MAX_EVENTS=str(self.txn if txn is None else txn),
            DECISIONFLOW_DEVICE="auto",
            DECISIONFLOW_METRICS_PORT=str(metrics_port),
        )

    def _workers(
        self,
        count: int,
        client: str,
        batch: int = BASE_BATCH,
        wait: int = BASE_WAIT_MS,
        txn: int | None = None,
        metrics_port: int = 0,
    ) -> Callable[[Topics, str], list[Child]]:
        """Start ``count`` real workers (``decisionflow worker``, the production loop)."""

        def start(topics: Topics, group: str) -> list[Child]:
            env = self._worker_env(topics, group, client, batch, wait, txn, metrics_port)
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
        with no_gc_pauses():
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

    def _memory(self, name: str, out: dict[str, Any]) -> None:
        pairs = list(zip(out["rss_start_mib"], out["rss_end_mib"], strict=True))
        for i, (start, end) in enumerate(pairs):
            self.res["memory"].append(
                {
                    "name": name if len(pairs) == 1 else f"{name} #{i + 1}",
                    "rss_start_mib": round(start, 1),
                    "rss_end_mib": round(end, 1),
                    "events": out["events"],
                }
            )

    def _say(self, what: str, item: dict[str, Any], client: str) -> None:
        own = ceiling_rate(self.res, client)
        share = fmt(ratio(item.get("rate"), own), "ratio")
        print(
            f"[bench] {what}: {fmt(item.get('rate'), 'rate')} ev/s "
            f"({client} EOS ceiling {fmt(own, 'rate')} ev/s; {share} of it)",
            flush=True,
        )
