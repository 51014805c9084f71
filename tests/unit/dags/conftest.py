"""The DAGs folder on sys.path, as Airflow's DAG processor and task runner put their bundle's
root there: the DAG files import their shared module ``common`` from it."""

from __future__ import annotations

import sys
from pathlib import Path

DAGS = str(Path(__file__).resolve().parents[3] / "dags")
if DAGS not in sys.path:
    sys.path.insert(0, DAGS)
