"""Small runtime lookups the DAG files share (called inside task bodies, never at parse time).

Locations follow :mod:`models.paths` (one layout for the demo, the CLI, workers and DAGs):
run-scoped work dirs ``<runs>/<dag_id>/<run_id>``, analyst reports one folder per day, and the
training data of the promoted model (the drift reference of the evaluate DAG).

The database and registry come from :class:`workers.settings.SinkSettings`.
"""

from __future__ import annotations

import re

from models import paths

__all__ = [
    "database_url",
    "model_name",
    "reference_path",
    "registry_url",
    "reports_dir",
    "run_dir",
]


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
    path = paths.runs_dir() / dag_id / safe
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def reports_dir() -> str:
    """Root of the analyst reports."""
    return str(paths.reports_dir())


def reference_path(model: str) -> str:
    """The drift reference (training data of the promoted model) for ``model``."""
    return str(paths.reference_dir() / f"{model}.parquet")
