"""Celery remote-control commands (run in the worker's MainProcess)."""

from __future__ import annotations

from typing import Any

from celery.worker.control import control_command

__all__ = ["reload_model"]


@control_command()  # type: ignore[misc, untyped-decorator]
def reload_model(state: Any, **kwargs: Any) -> dict[str, str]:
    """Check the registry's champion alias now and swap the model before the next batch."""
    holder = getattr(state.consumer.controller, "decisionflow_holder", None)
    if holder is None:
        return {"error": "this worker runs no decision loop"}
    holder.request_reload()
    return {"ok": f"reload requested (deciding with v{holder.version})"}
