"""Real decision workers for streaming tests: environment per test, waiting helper."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from devtools.launch import ChildProcess, start_worker
from devtools.launch import stop_all as stop_workers
from workers.settings import Topics

__all__ = ["WorkerProcess", "start_test_worker", "stop_workers", "wait_for", "worker_env"]


WorkerProcess = ChildProcess


def start_test_worker(name: str, env: dict[str, str], log_dir: Path) -> ChildProcess:
    """A `celery worker --decide` on a batch-job queue nobody else uses."""
    return start_worker(name, env, log_dir, queue=f"test-{uuid.uuid4().hex[:8]}")


def worker_env(topics: Topics, group_id: str, registry: Path, **extra: str) -> dict[str, str]:
    """Environment for a test worker: its own topics, group, registry and id prefix."""
    env = {
        **os.environ,
        "DECISIONFLOW_GROUP_ID": group_id,
        "DECISIONFLOW_REGISTRY_URL": str(registry),
        "DECISIONFLOW_TRANSACTIONAL_ID_PREFIX": group_id,
        "DECISIONFLOW_RELOAD_POLL_S": "1",
        "DECISIONFLOW_TRANSACTION_TIMEOUT_MS": "10000",
        "DECISIONFLOW_DEVICE": "cpu",
        "DECISIONFLOW_MAX_BATCH_SIZE": "500",
        "DECISIONFLOW_MAX_WAIT_MS": "50",
        "DECISIONFLOW_DEDUPE_WINDOW_S": "3600",  # claims outlive the test, not by a day
        "PYTHONUNBUFFERED": "1",
        **topics.env(),
    }
    env.update(extra)
    return env


def wait_for(cond: Callable[[], bool], timeout: float, what: str, poll: float = 1.0) -> None:
    """Wait until ``cond()`` is true or fail with ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
