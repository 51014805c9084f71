"""Where decisionflow keeps its files: one home folder, one layout, used by every command.

The home is ``$DECISIONFLOW_HOME``; else ``<checkout>/var`` when running from a source checkout
(the folder holding ``pyproject.toml`` next to this package); else, for a wheel install,
``$XDG_DATA_HOME/decisionflow`` (``~/.local/share/decisionflow``). Under it:

- ``stack/``: the local Kafka/Redis/PostgreSQL and ``stack.env`` (``DECISIONFLOW_RUN_DIR``)
- ``registry/``: model versions, aliases, history (``DECISIONFLOW_REGISTRY_URL``)
- ``reference/``: training data of each promoted model (``DECISIONFLOW_REFERENCE_DIR``)
- ``policies/``: policy versions written per flow, the promoted one, their history
  (``DECISIONFLOW_POLICIES_DIR``)
- ``reports/``: analyst reports, one folder per day (``DECISIONFLOW_REPORTS_DIR``)
- ``runs/``: work dirs of DAG runs (``DECISIONFLOW_RUNS_DIR``)
- ``airflow/``: the local Airflow's ``AIRFLOW_HOME``
- ``demo/``: ``make demo``'s data split, worker logs and summary
- ``decisionflow.db``: the embedded SQLite store when no ``DECISIONFLOW_DATABASE_URL`` is set

``make demo``, the CLI, the workers, the DAGs and ``make airflow`` all resolve these the same
way, so what one writes the others find with no extra flags.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = [
    "HOME_ENV",
    "airflow_home",
    "dags_folder",
    "demo_dir",
    "home",
    "policies_dir",
    "reference_dir",
    "reference_file",
    "registry_url",
    "repo_root",
    "reports_dir",
    "runs_dir",
    "safe_part",
    "sqlite_store_url",
    "stack_dir",
]

HOME_ENV = "DECISIONFLOW_HOME"


def repo_root() -> Path | None:
    """The source checkout this package runs from, or None for a wheel install."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() and (root / "models").is_dir() else None


def home() -> Path:
    """The folder every default location lives under (see the module docstring)."""
    if value := os.environ.get(HOME_ENV):
        return Path(value).expanduser().resolve()
    root = repo_root()
    if root is not None:
        return root / "var"
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "decisionflow"


def _override(var: str, default: str) -> Path:
    value = os.environ.get(var)
    return Path(value).expanduser() if value else home() / default


def stack_dir() -> Path:
    """The local stack's run directory (data, logs, ``stack.env``)."""
    return _override("DECISIONFLOW_RUN_DIR", "stack")


def registry_url() -> str:
    """The model registry: a path or an fsspec URL."""
    return os.environ.get("DECISIONFLOW_REGISTRY_URL") or str(home() / "registry")


def reference_dir() -> Path:
    """Training data of each promoted model (the drift reference)."""
    return _override("DECISIONFLOW_REFERENCE_DIR", "reference")


def reference_file(model_name: str) -> Path:
    """The drift reference of ``model_name``: its promoted model's training data."""
    return reference_dir() / f"{model_name}.parquet"


def policies_dir() -> Path:
    """Policy versions written per flow (cost-optimised cut-offs), the promoted one, history."""
    return _override("DECISIONFLOW_POLICIES_DIR", "policies")


def reports_dir() -> Path:
    """Root of the analyst reports."""
    return _override("DECISIONFLOW_REPORTS_DIR", "reports")


def runs_dir() -> Path:
    """Work dirs of DAG runs."""
    return _override("DECISIONFLOW_RUNS_DIR", "runs")


def airflow_home() -> Path:
    """The local Airflow's home (config, metadata DB, logs)."""
    return home() / "airflow"


def demo_dir() -> Path:
    """``make demo``'s own files: data split, worker logs, summary."""
    return home() / "demo"


def sqlite_store_url() -> str:
    """The embedded decision store used when no database URL is configured."""
    return f"sqlite:///{home() / 'decisionflow.db'}"


def safe_part(text: str) -> str:
    """``text`` as one safe path component (e.g. an Airflow run id with ``:`` and ``+``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def dags_folder() -> Path:
    """The DAG files: ``<checkout>/dags``, else ``$AIRFLOW_HOME/dags`` of a wheel install."""
    root = repo_root()
    if root is not None:
        return root / "dags"
    return Path(os.environ.get("AIRFLOW_HOME") or airflow_home()) / "dags"
