"""Where the host's CPU goes during a timed burst: CPU seconds per process group (psutil).

Everything in a benchmark run shares the host's cores: the workers, the Kafka broker, Redis,
and this process (the load generator and the ``read_committed`` reader). A throughput figure
alone cannot say whether the workers were short of CPU or the host was; :class:`CpuMeter`
reads the CPU time of each group and of the whole host over the burst, so the report can show
the CPU spent per event by each group and how many cores were busy.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psutil

__all__ = ["CpuMeter", "service_pids", "with_descendants"]


def _is_broker(cmdline: list[str]) -> bool:
    return bool(cmdline) and "java" in cmdline[0] and any("kafka" in a for a in cmdline)


def service_pids() -> dict[str, list[int]]:
    """The local stack's service processes on this host: ``broker`` (Kafka's JVMs), ``redis``
    and ``postgres`` (every process of each)."""
    out: dict[str, list[int]] = {"broker": [], "redis": [], "postgres": []}
    for proc in psutil.process_iter(["name", "cmdline"]):
        name, cmdline = proc.info["name"] or "", proc.info["cmdline"] or []
        if _is_broker(cmdline):
            out["broker"].append(proc.pid)
        elif name.startswith("redis-server"):
            out["redis"].append(proc.pid)
        elif name.startswith("postgres"):
            out["postgres"].append(proc.pid)
    return out


def with_descendants(pids: Iterable[int]) -> list[int]:
    """``pids`` and every process under them (a worker's pool children, if any)."""
    out: list[int] = []
    for pid in pids:
        out.append(pid)
        try:
            out += [child.pid for child in psutil.Process(pid).children(recursive=True)]
        except psutil.Error:
            continue
    return out


def _cpu_seconds(pid: int) -> float:
    try:
        t = psutil.Process(pid).cpu_times()
    except psutil.Error:  # gone: it used nothing more that we can see
        return 0.0
    return float(t.user + t.system)


def _host_busy_seconds() -> float:
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


@dataclass
class CpuMeter:
    """CPU seconds of named process groups and of the host between :meth:`start` and
    :meth:`stop`. ``groups`` maps a group name to a function giving its pids now (processes
    may start after the meter is built)."""

    groups: Mapping[str, Callable[[], Iterable[int]]]
    _start: dict[str, dict[int, float]] = field(default_factory=dict)
    _host: float = 0.0
    _t0: float = 0.0

    @classmethod
    def for_phase(cls, children: Callable[[], Iterable[int]]) -> CpuMeter:
        """Workers (``children``), this process (load generator + reader) and the stack."""
        services = service_pids()
        return cls(
            {
                "workers": children,
                "load generator + reader": lambda: [os.getpid()],
                **{name: (lambda pids=pids: pids) for name, pids in services.items()},
            }
        )

    def _read(self) -> dict[str, dict[int, float]]:
        return {g: {pid: _cpu_seconds(pid) for pid in pids()} for g, pids in self.groups.items()}

    def start(self) -> None:
        """Begin the interval."""
        self._start = self._read()
        self._host = _host_busy_seconds()
        self._t0 = time.monotonic()

    def stop(self, events: int) -> dict[str, Any]:
        """End the interval: wall seconds, cores busy (host), and per group its CPU seconds
        and µs per event (``events`` decided in the interval); ``other`` is the host's busy
        time no group accounts for."""
        end = self._read()
        wall = time.monotonic() - self._t0
        host = _host_busy_seconds() - self._host
        groups: dict[str, float] = {}
        for g, now in end.items():
            before = self._start.get(g, {})
            groups[g] = sum(max(s - before.get(pid, 0.0), 0.0) for pid, s in now.items())
        groups["other"] = max(host - sum(groups.values()), 0.0)
        per_event = max(events, 1)
        return {
            "wall_s": round(wall, 3),
            "host_cores_busy": round(host / wall, 2) if wall > 0 else None,
            "host_cores": psutil.cpu_count(),
            "cpu_s": {g: round(s, 3) for g, s in groups.items()},
            "us_per_event": {g: round(s / per_event * 1e6, 1) for g, s in groups.items()},
        }
