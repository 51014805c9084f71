"""Start real decision workers (Celery, --decide) as subprocesses for streaming tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from workers.settings import Topics

REPO = Path(__file__).resolve().parents[2]


class WorkerProcess:
    """One `celery worker --pool=solo --decide` process with its own log file."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log = log_dir / f"{name}.log"
        queue = f"test-{uuid.uuid4().hex[:8]}"  # batch-job queue nobody else uses
        cmd = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers.celery_app",
            "worker",
            "--pool=solo",
            "-n",
            f"{name}@test",
            "--decide",
            "-Q",
            queue,
            "--without-gossip",
            "--without-mingle",
            "--loglevel=INFO",
        ]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def kill(self) -> None:
        """SIGKILL: no clean-up at all (the open transaction stays open)."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM: Celery's warm shutdown stops the decision loop cleanly."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


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
        "PYTHONUNBUFFERED": "1",
        **{f"DECISIONFLOW_TOPICS__{k.upper()}": v for k, v in topics.model_dump().items()},
    }
    env.update(extra)
    return env


def wait_for(cond: object, timeout: float, what: str, poll: float = 1.0) -> None:
    """Wait until ``cond()`` is true or fail with ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
