"""decisionflow workers: the worker runtime and nothing else.

Owns the Celery app and its decision-loop bootstep, the decide loop, micro-batcher, decision
engine, model holder (hot swap), remote control, the sink and replay, the Kafka client settings,
metrics, logging and the ``decisionflow`` command line. May import ``models``, ``decisioning``,
``storage``, ``analytics`` and ``pipelines``; nothing imports ``workers`` except ``devtools``,
benchmarks, tests and (through the public names below only) the DAGs.

Public names are loaded lazily, so ``import workers`` stays cheap at DAG parse time.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workers.control_client import broadcast_reload
    from workers.settings import SinkSettings, WorkerSettings

__all__ = ["SinkSettings", "WorkerSettings", "broadcast_reload"]

_HOMES = {
    "SinkSettings": "workers.settings",
    "WorkerSettings": "workers.settings",
    "broadcast_reload": "workers.control_client",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'workers' has no attribute {name!r}")
