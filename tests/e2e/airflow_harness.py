"""Run Airflow in a throwaway home from tests: migrate its DB, run ``dag.test()`` in a child.

Airflow reads its configuration once per process, so every Airflow action runs in a child
process with the test's environment; the test process never imports Airflow. A test's
:class:`DagRunner` is one such child: it migrates the DB, then runs each ``dag.test()`` the test
asks for (Airflow and the task code imported once).
"""

from __future__ import annotations

from pathlib import Path

from devtools.airflow_local import DagRunner, airflow_env
from devtools.launch import free_port

REPO = Path(__file__).resolve().parents[2]


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
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        }
    )
    (tmp / "airflow").mkdir(parents=True, exist_ok=True)
    return env


__all__ = ["DagRunner", "free_port", "make_env"]
