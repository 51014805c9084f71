"""Start decision workers (and other children) as processes with their own log files.

Used by `make demo`, the benchmarks and the tests, so all of them start workers the same way
an operator and the deploy files do: ``decisionflow worker --name NAME --queues Q``.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from models import paths

__all__ = ["ChildProcess", "free_port", "start_worker", "stop_all", "worker_command"]


def free_port() -> int:
    """A free loopback TCP port (for a child's metrics or web endpoint)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def worker_command(name: str, queue: str, *, decide: bool = True) -> list[str]:
    """The command line of ``decisionflow worker`` (what the deploy files run) for ``name``."""
    cmd = [sys.executable, "-m", "workers.cli", "worker", "--name", name, "--queues", queue]
    return cmd if decide else [*cmd, "--no-decide"]


class ChildProcess:
    """A child process appending stdout+stderr to ``<log_dir>/<name>.log``.

    The log file may hold earlier runs of the same name; :meth:`log_text` (and so
    :meth:`wait_for_log`) reads only what this process wrote.
    """

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log = log_dir / f"{name}.log"
        with open(self.log, "ab") as out:
            self._log_start = out.tell()
            cwd = paths.repo_root() or Path.cwd()
            self.proc = subprocess.Popen(
                cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def log_text(self) -> str:
        """What this process has logged so far (not earlier runs in the same file)."""
        if not self.log.exists():
            return ""
        with open(self.log, "rb") as f:
            f.seek(self._log_start)
            return f.read().decode(errors="replace")

    def check(self) -> None:
        """Raise if the process has exited."""
        if self.proc.poll() is not None:
            tail = self.log_text()[-3000:]
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{tail}")

    def wait_for_log(self, text: str, timeout: float) -> None:
        """Wait until ``text`` appears in the log (raise if the process dies first)."""
        deadline = time.monotonic() + timeout
        while text not in self.log_text():
            self.check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: no {text!r} in {timeout:.0f}s ({self.log})")
            time.sleep(0.3)

    def kill(self) -> None:
        """SIGKILL: no clean-up at all (an open Kafka transaction stays open)."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self, timeout: float = 60) -> int | None:
        """SIGTERM (Celery's warm shutdown), SIGKILL after ``timeout``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def stop_all(children: Sequence[ChildProcess], timeout: float = 60) -> list[int | None]:
    """:meth:`ChildProcess.stop` for every child, side by side: SIGTERM to all first (so no
    worker is rebalanced onto another's partitions on its way out), then wait for each
    (SIGKILL after ``timeout`` in all). Returns the exit codes."""
    for child in children:
        if child.proc.poll() is None:
            child.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        try:
            child.proc.wait(max(deadline - time.monotonic(), 0))
        except subprocess.TimeoutExpired:
            child.proc.kill()
            child.proc.wait(10)
    return [child.proc.returncode for child in children]


def start_worker(
    name: str,
    env: dict[str, str],
    log_dir: Path,
    queue: str | None = None,
    decide: bool = True,
) -> ChildProcess:
    """Start a decision worker (``decide``) or a batch-job worker on ``queue``."""
    return ChildProcess(
        name, worker_command(name, queue or f"cpu-{name}", decide=decide), env, log_dir
    )
