"""A worker's readiness check reads only what this launch wrote to its log: a second run in the
same clone never takes the first run's "decision loop started" line for its own."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from devtools.launch import ChildProcess

READY = "decision loop started"


def _child(tmp_path: Path, code: str) -> ChildProcess:
    log = tmp_path / "w1.log"
    log.write_text(f"an earlier run\n{READY} as w1@old\n")  # the previous run's lines
    return ChildProcess("w1", [sys.executable, "-c", code], dict(os.environ), tmp_path)


def test_wait_for_log_waits_for_this_runs_line(tmp_path: Path) -> None:
    child = _child(
        tmp_path, f"import time; time.sleep(0.8); print({READY!r} + ' as w1@new', flush=True)"
    )
    try:
        t0 = time.monotonic()
        child.wait_for_log(READY, 30)
        assert time.monotonic() - t0 >= 0.7
        assert child.log_text() == f"{READY} as w1@new\n"
    finally:
        child.stop(10)
    assert "an earlier run" in (tmp_path / "w1.log").read_text()  # appended, not truncated


def test_an_earlier_runs_line_alone_never_counts(tmp_path: Path) -> None:
    child = _child(tmp_path, "import time; print('starting', flush=True); time.sleep(30)")
    try:
        with pytest.raises(TimeoutError):
            child.wait_for_log(READY, 1.0)
    finally:
        child.stop(10)
