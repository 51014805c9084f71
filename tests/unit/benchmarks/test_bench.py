"""How the phases are wired into one result, with the Kafka and process work stubbed out
(nothing starts, nothing is timed): which phase runs which load, and that the result they
build is what the verdict rules read."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import benchmarks.bench as bench_module
import benchmarks.scoring as scoring_module
from benchmarks.bench import Bench
from benchmarks.phase import After
from benchmarks.run import sizes_for
from benchmarks.targets import ENGINE_TOTAL, evaluate_targets
from workers.kafka_client import CLIENTS
from workers.settings import Topics

pytestmark = pytest.mark.unit

RATE = 1000.0


class _Reader:
    count = 0

    def wait_for(self, n: int, timeout: float, alive: Any = None) -> float:
        self.count = max(self.count, n)
        return 0.0


class _Child:
    def __init__(self) -> None:
        self.rss = 100.0

    def check(self) -> None:
        pass

    def rss_mib(self) -> float:
        self.rss += 1.0
        return self.rss


class StubBench(Bench):
    """Bench with every phase's Kafka and process work replaced by fixed numbers."""

    def __init__(self, phases: list[str], clients: tuple[str, ...] = CLIENTS) -> None:
        run: Any = SimpleNamespace(bootstrap="stub:9092", out_dir=Path("/nonexistent"))
        super().__init__(
            run,
            Path("/nonexistent"),
            sizes_for(True, soak_s=25.0),
            clients,
            default_client="confluent",
            phases=phases,
        )
        self.calls: list[tuple[str, int, int, bool]] = []

    def _phase(
        self,
        phase: str,
        start: Callable[[Topics, str], list[Any]],
        members: int,
        n: int,
        after: After | None = None,
        track_ids: bool = False,
    ) -> dict[str, Any]:
        self.calls.append((phase, members, n, after is not None))
        rate = RATE if n else None
        children: list[Any] = [_Child() for _ in range(members)]
        if after is not None:
            after(Topics(), _Reader(), children, rate)  # type: ignore[arg-type]
        return {
            "events": n,
            "rate": rate,
            "seconds": 1.0,
            "rss_start_mib": [1.0] * members,
            "rss_end_mib": [1.0] * members,
        }

    def _open_loop(
        self, topics: Topics, reader: Any, rate: float, seconds: float, tag: str
    ) -> dict[str, Any]:
        return {"target_rate": rate, "achieved_rate": rate, "events": 10, "seen": 10,
                "p50": 10.0, "p99": 20.0, "max": 30.0}  # fmt: skip

    def _profile(self, topics: Topics, reader: Any, child: Any, rate: float) -> dict[str, Any]:
        return {"samples": 0, "client": self.default}


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_module, "stage_snapshot", lambda port: {})

    def paced(
        bootstrap: str,
        topic: str,
        pool: Any,
        rate: float,
        seconds: float,
        tick: Callable[[float, int], None],
        tick_s: float,
        id_prefix: bytes,
    ) -> tuple[int, float]:
        t = tick_s
        while t < seconds:
            tick(t, int(rate * t))
            t += tick_s
        return int(rate * seconds), rate

    monkeypatch.setattr(bench_module, "paced_stream", paced)


def test_workers_run_each_client_with_one_and_two_processes() -> None:
    b = StubBench(["workers", "latency"])
    b.workers()
    assert [(c[0], c[1]) for c in b.calls] == [
        ("w-confluent-1", 1), ("w-confluent-2", 2), ("w-kafka-python-1", 1),
        ("w-kafka-python-2", 2),
    ]  # fmt: skip
    assert [c[3] for c in b.calls] == [True, False, False, False]  # loads ride on the default x1
    assert set(b.res["workers"]) == {"confluent_1", "confluent_2", "kafka-python_1",
                                     "kafka-python_2"}  # fmt: skip
    points = b.res["latency"]["points"]
    assert [p["load_pct"] for p in points] == [10, 25, 50, 75]
    assert [p["target_rate"] for p in points] == [100.0, 250.0, 500.0, 750.0]
    assert b.res["profile"]["client"] == "confluent"
    b.latency()  # already measured: no second phase
    assert len(b.calls) == 4


def test_latency_alone_runs_its_own_default_client_phase() -> None:
    b = StubBench(["latency"], clients=("kafka-python",))
    b.latency()
    assert [c[0] for c in b.calls] == ["w-confluent-1"]
    assert len(b.res["latency"]["points"]) == 4


def test_sweep_uses_half_the_default_client_maximum() -> None:
    b = StubBench(["workers", "sweep"])
    b.res["workers"]["confluent_1"] = {"rate": 1800.0}
    b.sweep()
    sweep = b.res["sweep"]
    assert sweep["load_rate"] == 900.0
    assert [(p["batch"], p["wait_ms"], p["txn_max_events"]) for p in sweep["points"]] == [
        (100, 50, 0), (500, 50, 0), (500, 50, 2000),
    ]  # fmt: skip
    assert all(p["rate"] == RATE and p["p99"] == 20.0 for p in sweep["points"])


def test_sweep_skips_the_open_loop_on_a_saturated_point() -> None:
    b = StubBench(["sweep"])
    b.res["workers"]["confluent_1"] = {"rate": 2000.0}
    b.sweep()  # each point's burst reached 1000/s, under 1.1 x 1000
    assert all("capacity below" in p["note"] for p in b.res["sweep"]["points"])
    assert all("p99" not in p for p in b.res["sweep"]["points"])


def test_soak_samples_rss_after_warm_up_every_tick_and_at_the_end() -> None:
    b = StubBench(["soak"])
    b.res["workers"]["confluent_1"] = {"rate": 4000.0}
    b.soak()
    soak = b.res["soak"]
    assert b.calls == [("soak", 1, 2000, True)]  # known maximum: a warm-up burst only
    assert soak["target_rate"] == 2000.0 and soak["max_rate"] == 4000.0
    assert [s["t_s"] for s in soak["samples"][:-1]] == [0.0, 10.0, 20.0]
    assert len(soak["samples"]) == 4


def test_a_soak_without_a_known_maximum_measures_one() -> None:
    b = StubBench(["soak"])
    b.soak()
    assert b.calls[0][2] == b.sizes["workers"]
    assert b.res["soak"]["max_rate"] == RATE


def test_the_phases_build_what_the_verdicts_read(monkeypatch: pytest.MonkeyPatch) -> None:
    def scoring(registry: Any, records: Any, batches: list[int], *_: Any) -> dict[str, Any]:
        return {"rows": [{"batch": n, "seconds": {ENGINE_TOTAL: n * 1e-5}} for n in batches]}

    monkeypatch.setattr(scoring_module, "run_scoring", scoring)
    b = StubBench(["workers", "latency", "soak", "scoring"])
    b.sizes = sizes_for(False, soak_s=25.0)  # full mode: batch 500 is among the sizes
    b.src = SimpleNamespace(make=lambda prefix, n: [(b"k", b"v")] * n)  # type: ignore[assignment]
    b.res["ceiling"] = {c: {"rate": 2000.0, "client": c} for c in CLIENTS}
    b.workers()
    b.soak()
    b.scoring()
    rows = evaluate_targets({**b.res, "meta": {"mode": "full"}})
    assert all(r["met"] is not None for r in rows), rows
