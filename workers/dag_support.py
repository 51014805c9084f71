"""Small runtime lookups the DAG files share (called inside task bodies, never at parse time).

Locations (environment, else under the repository's ``var/``):

- ``DECISIONFLOW_RUNS_DIR`` (``var/runs``): run-scoped work dirs, ``<runs>/<dag_id>/<run_id>``.
- ``DECISIONFLOW_REPORTS_DIR`` (``var/reports``): analyst reports, one folder per day.
- ``DECISIONFLOW_REFERENCE_DIR`` (``var/reference``): the training data of the promoted model,
  the drift reference of the evaluate DAG.

The database and registry come from :class:`workers.settings.SinkSettings`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = [
    "database_url",
    "model_name",
    "reference_path",
    "registry_url",
    "reports_dir",
    "run_dir",
]

REPO_ROOT = Path(__file__).resolve().parent.parent


def _dir(var: str, default: str) -> Path:
    return Path(os.environ.get(var) or REPO_ROOT / "var" / default)


def database_url() -> str:
    """The store's SQLAlchemy URL (secret: pass it to functions, never log or XCom it)."""
    from workers.settings import SinkSettings

    return SinkSettings().database_url.get_secret_value()


def registry_url() -> str:
    """Where the model registry lives."""
    from workers.settings import SinkSettings

    return SinkSettings().registry_url


def model_name() -> str:
    """The registered model name the workers deploy."""
    from workers.settings import SinkSettings

    return SinkSettings().model_name


def run_dir(dag_id: str, run_id: str) -> str:
    """A work dir for one DAG run (created); the run id is made filesystem-safe."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)
    path = _dir("DECISIONFLOW_RUNS_DIR", "runs") / dag_id / safe
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def reports_dir() -> str:
    """Root of the analyst reports."""
    return str(_dir("DECISIONFLOW_REPORTS_DIR", "reports"))


def reference_path(model: str) -> str:
    """The drift reference (training data of the promoted model) for ``model``."""
    return str(_dir("DECISIONFLOW_REFERENCE_DIR", "reference") / f"{model}.parquet")
