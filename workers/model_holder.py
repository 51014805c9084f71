"""Keeps the deployed model current: loads the registry's ``champion`` and swaps it in
between batches when the alias moves or a ``reload_model`` control command asks.

Each model is loaded with the configured score runtime (``DECISIONFLOW_RUNTIME``,
:mod:`models.runtimes`): the log line and the ``decisionflow_model_info`` metric name the
runtime that produces scores and the one that produces reason codes (always ``native``)."""

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
        runtime: str = "native",
        threads: int = 1,
        flow: str | None = None,
    ) -> None:
        self.registry = registry
        self.model_name = model_name
        self.flow = flow or model_name  # the `flow` label of its metrics
        self.alias = alias
        self.poll_s = poll_s
        self.device = device
        self.runtime = runtime
        self.threads = threads  # ONNX Runtime intra-op threads (the worker's torch_threads)
        self._clock = clock
        self._forced = threading.Event()
        self._checked_at = 0.0
        self.version: int | None = None

    def load(self) -> Any:
        """Load the model behind the alias now (verified by the registry), with the runtime."""
        model = self.load_ref(self.alias)
        self.version = int(model.version)
        scores = str(getattr(model, "score_runtime", "native"))
        reasons = str(getattr(model, "reason_runtime", "native"))
        metrics.MODEL_INFO.labels(self.flow).info(
            {
                "name": self.model_name,
                "version": str(self.version),
                "score_runtime": scores,
                "reason_runtime": reasons,
            }
        )
        log.info(
            "loaded model %s v%s (%s): scores by %s runtime, reasons by %s (%s)",
            self.model_name,
            self.version,
            self.alias,
            scores,
            reasons,
            getattr(model, "runtime_note", "") or f"runtime {self.runtime}",
        )
        return model

    def load_ref(self, ref: str | int) -> Any:
        """Load version or alias ``ref`` with the configured runtime; a runtime that cannot be
        set up (e.g. ONNX Runtime missing) leaves the native model scoring, logged."""
        model = self.registry.load(self.model_name, ref, device=self.device)
        if self.runtime in ("native", "torch"):
            return model
        from models.runtimes import load_with_runtime

        try:
            return load_with_runtime(self.registry, model, self.runtime, threads=self.threads)
        except Exception:
            log.exception("runtime %s unavailable for %s; scoring natively", self.runtime, ref)
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
