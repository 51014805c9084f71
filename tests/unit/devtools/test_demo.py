"""`make demo`'s worker start: every run logs to its own folder and waits for what its own
workers wrote (a second demo in the same clone used to find the first one's line)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import devtools.launch
from devtools.demo import Demo, build_parser
from devtools.demo_reader import Read
from devtools.demo_stats import measurement_lines
from models import paths


class _FakeWorker:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.waited_for: list[str] = []

    def wait_for_log(self, text: str, timeout: float) -> None:
        self.waited_for.append(text)

    def check(self) -> None:
        pass


def _demo(tmp_path: Path, run_id: str, monkeypatch: pytest.MonkeyPatch) -> Demo:
    monkeypatch.setenv(paths.HOME_ENV, str(tmp_path))  # restored after the test
    args = build_parser().parse_args(
        ["--home", str(tmp_path), "--run-id", run_id, "--database-url", "sqlite://"]
    )
    demo = Demo(args)
    monkeypatch.setattr(demo, "_wait_group", lambda: None)
    monkeypatch.setattr(demo, "_start_reader", lambda: None)
    monkeypatch.setattr(demo, "warm_up", lambda: None)
    return demo


def test_each_run_starts_its_workers_on_fresh_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[tuple[str, Path]] = []

    def fake_start(name: str, env: dict[str, str], log_dir: Path, **_: Any) -> _FakeWorker:
        started.append((name, log_dir))
        return _FakeWorker(log_dir)

    monkeypatch.setattr(devtools.launch, "start_worker", fake_start)
    first = _demo(tmp_path, "run-1", monkeypatch)
    first.start_workers()
    second = _demo(tmp_path, "run-2", monkeypatch)
    second.start_workers()

    dirs = [d for _, d in started]
    assert dirs[:2] == [tmp_path / "demo" / "logs" / "run-1"] * 2
    assert dirs[2:] == [tmp_path / "demo" / "logs" / "run-2"] * 2
    assert [n for n, _ in started] == ["demo1-main", "demo2-main"] * 2
    assert all(w.waited_for == ["decision loop started"] for w in second.workers)  # type: ignore[attr-defined]


def test_the_burst_and_warm_up_can_be_switched_off() -> None:
    args = build_parser().parse_args(["--burst", "0", "--warm-up", "0"])
    assert args.burst == 0 and args.warm_up == 0
    defaults = build_parser().parse_args([])
    assert defaults.burst > 0 and defaults.warm_up > 0


class _FakeReader:
    """What the demo's reader would have read: decisions by event id, dead letters."""

    def __init__(self, decisions: dict[str, Read], letters: list[Read]) -> None:
        self._decisions = decisions
        self._letters = letters
        self.duplicates = 0

    def decisions(self, prefix: str) -> list[Read]:
        return [r for eid, r in self._decisions.items() if eid.startswith(prefix)]

    def dead_letters(self) -> list[Read]:
        return list(self._letters)

    def wait_until(self, done: Any, timeout: float, alive: Any = None) -> None:
        assert done(), "the demo would wait for records that never come"


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def test_stream_and_burst_figures_come_from_this_runs_committed_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    demo = _demo(tmp_path, "run-1", monkeypatch)
    t0 = 1_800_000_000.0
    decisions: dict[str, Read] = {}
    for i in range(10):  # the paced stream: 100 ev/s, each read committed 50 ms after its event
        rec = {
            "event_id": f"run-1-s-app{i}-r0",
            "event_time": _iso(t0 + i / 100),
            "decided_at": _iso(t0 + i / 100 + 0.02),
            "decision": "approve",
            "arm": "champion",
            "model_version": 1,
            "reasons": [{"code": "R01"}],
        }
        decisions[rec["event_id"]] = Read(t0 + i / 100 + 0.05, rec)
    for i in range(10):  # the burst: all in Kafka at t0 + 10; reads 0.1 s apart from then on
        decisions[f"run-1-burst-{i}"] = Read(t0 + 10 + i / 10, {"event_id": f"run-1-burst-{i}"})
    letters = [  # one of an earlier run (offset 3), two of the stream (offsets 10, 11)
        Read(
            t0, {"source_topic": "events", "source_partition": 0, "source_offset": o, "reason": "x"}
        )
        for o in (3, 10, 11)
    ]
    offsets = iter([{0: 5}, {0: 17}, {0: 17}, {0: 27}])  # stream start/end, burst start/end
    monkeypatch.setattr("devtools.demo.end_offsets", lambda bootstrap, topic: next(offsets))
    monkeypatch.setattr(demo, "cli", lambda *args: "")
    monkeypatch.setattr(demo, "_events", lambda prefix, n: [("k", b"v")] * n)
    monkeypatch.setattr(demo, "_send", lambda events: t0 + 10)
    demo.reader = _FakeReader(decisions, letters)  # type: ignore[assignment]
    demo.args.burst = 10
    demo.held_csv = tmp_path / "heldback.csv"

    demo.stream()

    st = demo.summary["stream"]
    assert (st["records_sent"], st["decisions"], st["dead_letters"], st["unaccounted"]) == (
        12,
        10,
        2,
        0,
    )
    assert st["offered"]["send_seconds"] == pytest.approx(0.09)
    assert st["offered"]["events_per_s"] == pytest.approx(12 / 0.09, rel=1e-3)
    assert st["latency_ms"]["p50"] == pytest.approx(50.0, abs=0.5)
    assert st["latency_ms"]["p99"] == pytest.approx(50.0, abs=0.5)
    cap = demo.summary["capacity"]
    assert cap["backlog"] is True
    assert cap["decisions_per_s"] == pytest.approx(10.0)  # 9 decisions in 0.9 s
    text = "\n".join(measurement_lines(st, cap, 2, 100.0))
    assert "offered load" in text and "capacity" in text
