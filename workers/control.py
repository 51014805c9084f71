"""Celery remote-control commands (run in the worker's MainProcess)."""

from __future__ import annotations

from typing import Any

from celery.worker.control import control_command

from workers.runtime import installed

__all__ = ["reload_model"]


@control_command(args=[("flow", str)], signature="[flow]")  # type: ignore[misc, untyped-decorator]
def reload_model(state: Any, flow: str | None = None, **kwargs: Any) -> dict[str, str]:
    """Check the registry's champion alias now and swap the model before the next batch.

    Every flow the worker serves, or only ``flow``.
    """
    runtimes = installed()
    if flow is not None:
        runtimes = {k: v for k, v in runtimes.items() if k == flow}
        if not runtimes:
            return {"error": f"this worker serves no flow {flow!r}"}
    if not runtimes:
        return {"error": "this worker runs no decision loop"}
    if len(runtimes) == 1:
        return {"ok": next(iter(runtimes.values())).request_reload()}
    return {"ok": "; ".join(f"{name}: {rt.request_reload()}" for name, rt in runtimes.items())}
