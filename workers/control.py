"""Celery remote-control commands (run in the worker's MainProcess)."""

from __future__ import annotations

from typing import Any

from celery.worker.control import control_command

from workers.runtime import current

__all__ = ["reload_model"]


@control_command()  # type: ignore[misc, untyped-decorator]
def reload_model(state: Any, **kwargs: Any) -> dict[str, str]:
    """Check the registry's champion alias now and swap the model before the next batch."""
    runtime = current()
    if runtime is None:
        return {"error": "this worker runs no decision loop"}
    return {"ok": runtime.request_reload()}
