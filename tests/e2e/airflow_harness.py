"""Run Airflow in a throwaway home from tests: migrate its DB, run ``dag.test()`` in a child.

Airflow reads its configuration once per process, so every Airflow action runs in a child
process with the test's environment; the test process never imports Airflow.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from workers.airflow_local import airflow_env

REPO = Path(__file__).resolve().parents[2]

_RUNNER = r"""
import json, sys
from airflow.models import DagBag
bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
dag = bag.dags[sys.argv[2]]
run = dag.test(run_conf=json.loads(sys.argv[3]))
states = {}
for ti in run.get_task_instances():
    key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
    states[key] = str(ti.state)
print("DAGRUN=" + json.dumps({"state": str(run.state), "run_id": run.run_id, "tasks": states}))
"""


def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_env(tmp: Path, database_url: str, port: int | None = None) -> dict[str, str]:
    """Environment of an isolated Airflow + decisionflow installation under ``tmp``."""
    env = airflow_env(home=tmp / "airflow", port=port or free_port())
    env.update(
        {
            "DECISIONFLOW_DATABASE_URL": database_url,
            "DECISIONFLOW_REGISTRY_URL": str(tmp / "registry"),
            "DECISIONFLOW_RUNS_DIR": str(tmp / "runs"),
            "DECISIONFLOW_REPORTS_DIR": str(tmp / "reports"),
            "DECISIONFLOW_REFERENCE_DIR": str(tmp / "reference"),
            "DECISIONFLOW_MODEL_NAME": "credit",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        }
    )
    (tmp / "airflow").mkdir(parents=True, exist_ok=True)
    return env


def migrate(env: dict[str, str]) -> None:
    """``airflow db migrate`` in the env's AIRFLOW_HOME."""
    airflow = str(Path(sys.executable).with_name("airflow"))
    proc = subprocess.run(
        [airflow, "db", "migrate"], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def dag_test(env: dict[str, str], dag_id: str, conf: dict[str, Any]) -> dict[str, Any]:
    """Run ``dag.test(run_conf=conf)`` in a child; return the run state and task states."""
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _RUNNER,
            env["AIRFLOW__CORE__DAGS_FOLDER"],
            dag_id,
            json.dumps(conf),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("DAGRUN=")]
    assert proc.returncode == 0 and lines, (
        f"dag.test of {dag_id} failed (rc {proc.returncode}):\n"
        + proc.stdout[-6000:]
        + proc.stderr[-6000:]
    )
    result: dict[str, Any] = json.loads(lines[-1][len("DAGRUN=") :])
    result["log"] = proc.stdout[-20000:] + proc.stderr[-20000:]
    return result
