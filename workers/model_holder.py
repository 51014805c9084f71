"""Keeps the deployed model current: loads the registry's ``champion`` and swaps it in
between batches when the alias moves or a ``reload_model`` control command asks."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from workers import metrics
from workers.engine import DecisionEngine

__all__ = ["ModelHolder"]

log = logging.getLogger(__name__)


class ModelHolder:
    """Polls the alias every ``poll_s`` seconds; ``request_reload`` forces a check."""

    def __init__(
        self,
        registry: Any,
        model_name: str,
        alias: str = "champion",
        poll_s: float = 5.0,
        device: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.model_name = model_name
        self.alias = alias
        self.poll_s = poll_s
        self.device = device
        self._clock = clock
        self._forced = threading.Event()
        self._checked_at = 0.0
        self.version: int | None = None

    def load(self) -> Any:
        """Load the model behind the alias now (SHA-256 verified by the registry)."""
        model = self.registry.load(self.model_name, self.alias, device=self.device)
        self.version = int(model.version)
        metrics.MODEL_INFO.info({"name": self.model_name, "version": str(self.version)})
        log.info("loaded model %s v%s (%s)", self.model_name, self.version, self.alias)
        return model

    def request_reload(self) -> None:
        """Check the alias before the next batch (thread-safe; used by the control command)."""
        self._forced.set()

    def before_batch(self, engine: DecisionEngine) -> None:
        """Swap the engine's champion if the alias moved. Runs between batches."""
        now = self._clock()
        if not self._forced.is_set() and now - self._checked_at < self.poll_s:
            return
        self._forced.clear()
        self._checked_at = now
        try:
            current = self.registry.alias_version(self.model_name, self.alias)
        except Exception:
            log.exception("could not read alias %s; keeping v%s", self.alias, self.version)
            return
        if current is not None and current != self.version:
            try:
                engine.swap_champion(self.load())
            except Exception:
                log.exception(
                    "could not load %s v%s; keeping v%s", self.model_name, current, self.version
                )
