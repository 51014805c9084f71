"""What the DAG files share: parse-time constants, and runtime lookups for task bodies.

At parse time only ``pendulum`` and ``airflow.sdk`` are imported (the quality-alert asset,
default task arguments). The lookups import decisionflow lazily, inside task bodies: locations
follow :mod:`models.paths` (one layout for the demo, the CLI, workers and DAGs), the database
and registry come from the public settings of :mod:`workers`, the model name from the spec.

Airflow puts the DAGs folder on ``sys.path``, so the DAG files ``import common``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset

QUALITY_ALERT = Asset("decisionflow://quality-alert")
# transient failures (store, broker, registry I/O) get two more tries
DEFAULT_ARGS = {"retries": 2, "retry_delay": pendulum.duration(minutes=2)}
START_DATE = pendulum.datetime(2026, 1, 1, tz="UTC")

__all__ = [
    "DEFAULT_ARGS",
    "QUALITY_ALERT",
    "START_DATE",
    "database_url",
    "model_name",
    "reference_path",
    "registry_url",
    "reports_dir",
    "run_dir",
]


def database_url() -> str:
    """The store's SQLAlchemy URL (secret: pass it to functions, never log or XCom it)."""
    from workers import SinkSettings

    return SinkSettings().database_url.get_secret_value()


def registry_url() -> str:
    """Where the model registry lives."""
    from workers import SinkSettings

    return SinkSettings().registry_url


def model_name(spec: str) -> str:
    """The registry name of the model trained on ``spec``: the spec's own name, always.

    Never an ambient default: a churn spec trained while ``DECISIONFLOW_MODEL_NAME`` still said
    ``credit_data`` once became the champion of credit_data. (That variable tells the
    *workers* which model to deploy.)
    """
    from models.spec import load_spec

    return load_spec(spec).name


def run_dir(dag_id: str, run_id: str) -> str:
    """A work dir for one DAG run (created); the run id is made filesystem-safe."""
    from models import paths

    path = paths.runs_dir() / dag_id / paths.safe_part(run_id)
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def reports_dir() -> str:
    """Root of the analyst reports."""
    from models import paths

    return str(paths.reports_dir())


def reference_path(model: str) -> str:
    """The drift reference (training data of the promoted model) for ``model``."""
    from models import paths

    return str(paths.reference_file(model))
