"""Telling running workers to reload the champion (Celery remote control)."""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["broadcast_reload"]

log = logging.getLogger(__name__)


def broadcast_reload(timeout_s: float = 2.0, flow: str | None = None) -> dict[str, Any]:
    """Broadcast ``reload_model`` to every worker (for one ``flow``, else every flow each
    serves); returns who answered.

    Never fails the caller: with no worker (or no broker) it logs and reports zero replies —
    workers also poll the registry alias every ``reload_poll_s`` and pick the change up.
    """
    try:
        from workers.celery_app import app

        arguments = {"flow": flow} if flow else {}
        replies = (
            app.control.broadcast(
                "reload_model", arguments=arguments, reply=True, timeout=timeout_s
            )
            or []
        )
    except Exception as exc:  # broker down: the alias poll covers it
        log.warning("reload broadcast failed (%s); workers will pick the alias up by polling", exc)
        return {"replies": 0, "workers": {}, "error": str(exc)[:300]}
    answered: dict[str, Any] = {}
    for reply in replies:
        answered.update(reply)
    if not answered:
        log.warning("no worker answered reload_model; they will pick the alias up by polling")
    return {"replies": len(answered), "workers": answered}
