"""The burst's CPU accounting: CPU seconds of process groups over an interval, per event."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from benchmarks.cpu import CpuMeter, with_descendants
from benchmarks.report import markdown
from tests.unit.benchmarks.sample_results import passing

pytestmark = pytest.mark.unit


def _burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_the_meter_charges_each_group_its_own_cpu_per_event() -> None:
    meter = CpuMeter({"me": lambda: [os.getpid()], "nobody": lambda: []})
    meter.start()
    _burn(0.3)
    out = meter.stop(events=1000)
    assert out["cpu_s"]["me"] >= 0.25  # the CPU this process burnt, not wall time
    assert out["cpu_s"]["nobody"] == 0.0
    assert out["us_per_event"]["me"] == pytest.approx(out["cpu_s"]["me"] / 1000 * 1e6, rel=0.01)
    assert out["cpu_s"]["other"] >= 0.0 and out["host_cores_busy"] > 0


def test_a_group_counts_the_processes_under_its_pids() -> None:
    # "; true": the shell must fork its child rather than exec into it
    script = f"{sys.executable} -c 'import time; time.sleep(30)'; true"
    shell = subprocess.Popen(["/bin/sh", "-c", script])
    try:
        deadline = time.monotonic() + 10
        while len(with_descendants([shell.pid])) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        pids = with_descendants([shell.pid])
        assert pids[0] == shell.pid and len(pids) == 2
    finally:
        shell.kill()
        shell.wait()


def test_the_report_shows_where_the_cpu_went_per_burst() -> None:
    res = passing()
    res["workers"]["confluent_1"]["cpu"] = {
        "host_cores_busy": 1.93,
        "host_cores": 2,
        "us_per_event": {"workers": 40.0, "load generator + reader": 9.5, "broker": 120.0,
                         "redis": 4.0, "postgres": 0.0, "other": 1.5},
    }  # fmt: skip
    md = markdown(res)
    assert "### Where the host's CPU went during each burst" in md
    assert "| workers: confluent_1 | 40.0 | 9.5 | 120 | 4.0 | 0.0 | 1.5 | 175 | 1.93 of 2 |" in md
    assert "CPU went" not in markdown(passing())  # no accounting measured: no table
