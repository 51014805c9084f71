"""`score_file` as a real Celery batch job (Redis broker, a worker on its own queue):
CSV in, decisions Parquet out, bad rows kept aside with their reasons; the task's events (what
Flower shows) are on the wire."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from devtools.launch import start_worker
from models.data import holdout_split, load_frame
from models.registry import ModelRegistry
from models.spec import load_spec
from models.training import train_family


@contextmanager
def _stopping(worker: Any) -> Iterator[None]:
    try:
        yield
    finally:
        worker.stop()


@contextmanager
def task_events() -> Iterator[dict[str, set[str]]]:
    """Event types per task id, as Flower receives them (a Celery event receiver)."""
    from celery.events.receiver import EventReceiver

    from workers.celery_app import app

    seen: dict[str, set[str]] = defaultdict(set)
    ready = threading.Event()

    class Receiver(EventReceiver):  # type: ignore[misc]
        def on_consume_ready(self, *args: Any, **kwargs: Any) -> None:
            super().on_consume_ready(*args, **kwargs)
            ready.set()

    def record(event: dict[str, Any]) -> None:
        seen[event.get("uuid", "")].add(event["type"])

    with app.connection_for_read() as conn:
        receiver = Receiver(conn, handlers={"*": record}, app=app)
        thread = threading.Thread(target=receiver.capture, daemon=True)
        thread.start()
        assert ready.wait(30), "the event receiver did not start"
        try:
            yield seen
        finally:
            receiver.should_stop = True
            thread.join(10)


def test_score_file_job_on_a_worker_queue(tmp_path: Path) -> None:
    spec = load_spec("credit_data")
    train, held = holdout_split(load_frame(spec), spec, 0.1, seed=5)
    registry = ModelRegistry(tmp_path / "registry")
    registry.promote(
        spec.name, registry.register(train_family("logreg", train, spec)), reason="test"
    )
    src = tmp_path / "backfill.csv"
    bad = held.iloc[:3].copy()
    bad["Amount"] = "lots"  # wrong type: must be rejected, not crash the job
    pd.concat([held, bad]).drop(columns=[spec.label.column]).to_csv(src, index=False)

    queue = f"gpu-test-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DECISIONFLOW_REGISTRY_URL": str(registry.root),
        "DECISIONFLOW_DEVICE": "cpu",
    }
    worker = start_worker(queue, env, tmp_path, queue=queue, decide=False)
    with task_events() as events, _stopping(worker):
        from workers.tasks import score_file

        out = tmp_path / "out" / "decisions.parquet"
        result = score_file.apply_async(args=[str(src), str(out)], queue=queue)
        states = set()
        deadline = time.monotonic() + 180
        while not result.ready():
            assert time.monotonic() < deadline, worker.log_text()[-3000:]
            states.add(result.state)
            time.sleep(0.2)
        summary = result.get(timeout=10)
        deadline = time.monotonic() + 20
        while "task-succeeded" not in events[result.id] and time.monotonic() < deadline:
            time.sleep(0.2)
    assert {"task-sent", "task-received", "task-started", "task-succeeded"} <= events[result.id]
    assert summary["decisions"] == len(held) and summary["rejects"] == 3
    decisions = pd.read_parquet(out)
    assert len(decisions) == len(held)
    assert set(decisions["decision"]) <= {"approve", "review", "decline"}
    assert (decisions["model_version"] == 1).all()
    rejects = pd.read_parquet(out.with_suffix(".rejects.parquet"))
    assert set(rejects["reason"]) == {"feature_type"}
    assert "PROGRESS" in states or "PENDING" in states
