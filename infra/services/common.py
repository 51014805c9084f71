"""Helpers shared by the stack's services: locations, ports, logging, processes, pid files,
port checks, health waits and Debian package installs."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# the layout of models/paths.py: DECISIONFLOW_RUN_DIR, else <home>/stack (home: var/)
HOME = Path(os.environ.get("DECISIONFLOW_HOME") or REPO / "var")
RUN = Path(os.environ.get("DECISIONFLOW_RUN_DIR") or HOME / "stack").resolve()
HOST = "127.0.0.1"
_KAFKA_PORT = int(os.environ.get("DECISIONFLOW_KAFKA_PORT", "19092"))
PORTS = {
    "kafka": _KAFKA_PORT,
    "controller": int(os.environ.get("DECISIONFLOW_KAFKA_CONTROLLER_PORT", "19093")),
    # the SASL_PLAINTEXT (SCRAM) listener: 3 above the PLAINTEXT one unless set (19095)
    "kafka_sasl": int(os.environ.get("DECISIONFLOW_KAFKA_SASL_PORT") or _KAFKA_PORT + 3),
    "redis": int(os.environ.get("DECISIONFLOW_REDIS_PORT", "16379")),
    "postgres": int(os.environ.get("DECISIONFLOW_POSTGRES_PORT", "15432")),
}


def log(msg: str) -> None:
    print(f"[stack] {msg}", flush=True)


def sh(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)  # type: ignore[call-overload, no-any-return]


# --------------------------------------------------------------------------- processes


def pid_of(name: str) -> int | None:
    """The pid recorded for a service, if that process is alive and is ours."""
    f = RUN / name / f"{name}.pid"
    try:
        pid = int(f.read_text().split()[0])
        os.kill(pid, 0)
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except (OSError, ValueError, IndexError):
        return None
    # redis rewrites its process title, so its working directory (--dir) identifies it
    return pid if str(RUN) in cmdline or cwd.startswith(str(RUN)) else None


def already_up(name: str, healthy: Callable[[], bool]) -> bool:
    """Whether the service runs (our process, healthy); says so when it does."""
    if pid_of(name) and healthy():
        log(f"{name} already up on {HOST}:{PORTS[name]}")
        return True
    return False


def stop_pid(name: str, pid: int, timeout: float = 30) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        # reap if it is our child (it is not, normally: services are daemonised)
        time.sleep(0.2)
    log(f"{name} (pid {pid}) ignored SIGTERM for {timeout:.0f}s; killing")
    os.kill(pid, signal.SIGKILL)


def stop_pids(pids: dict[str, int], timeout: float = 30) -> None:
    """SIGTERM several processes at once (name -> pid), SIGKILL those still alive after
    ``timeout`` seconds. Brokers of one cluster stop together: stopped one by one, the last
    ones would wait for a controller quorum that is already gone."""
    for pid in pids.values():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(alive(pid) for pid in pids.values()):
            return
        time.sleep(0.2)
    for name, pid in pids.items():
        if alive(pid):
            log(f"{name} (pid {pid}) ignored SIGTERM for {timeout:.0f}s; killing")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    """Whether a process exists and has not exited (a zombie has)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


# --------------------------------------------------------------------------- ports, health


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((HOST, port)) == 0


def ensure_free(name: str, port: int) -> None:
    if port_open(port):
        raise SystemExit(
            f"[stack] port {port} for {name} is taken by a process this stack did not start; "
            f"set DECISIONFLOW_{name.upper()}_PORT to a free port"
        )


def wait_for(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # the service is still starting
            pass
        time.sleep(0.3)
    raise SystemExit(f"[stack] {what} not healthy after {timeout:.0f}s; see `infra/stack logs`")


# --------------------------------------------------------------------------- packages


def apt_install(*packages: str) -> None:
    if os.geteuid() != 0:
        raise SystemExit(f"[stack] please install {' '.join(packages)} (needs root)")
    log(f"installing {' '.join(packages)} from Debian packages")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
