"""Celery worker bootstep that runs the Kafka decision loops on threads of the MainProcess:
one loop per decision flow the worker serves (``DECISIONFLOW_FLOWS``), each with its own
model holder, policy, topics, consumer group and transactional id."""

from __future__ import annotations

import gc
import logging
import socket
import threading
from typing import Any

from celery import bootsteps

from workers import runtime
from workers.runtime import DecisionRuntime
from workers.settings import WorkerSettings

__all__ = ["DecisionStep", "build_loop", "tune_process"]

log = logging.getLogger(__name__)


def tune_process(settings: WorkerSettings) -> None:
    """Process-wide settings for deciding batches: torch CPU threads and the GC threshold."""
    if settings.torch_threads:
        import torch

        torch.set_num_threads(settings.torch_threads)
    # A batch allocates and frees many short-lived objects; at the default gen-0 threshold
    # (700) they set off a full collection every ~20 batches, each walking the ~340k start-up
    # objects for ~150 ms. At 10,000 steady-state batches trigger none (mean batch -18 %).
    gc.set_threshold(10_000, 10, 10)


def build_loop(
    settings: WorkerSettings, worker_name: str, serve_metrics: bool = True
) -> tuple[Any, Any]:
    """Wire registry -> model holder -> engine -> loop for one flow. Heavy imports happen here."""
    from decisioning.arms import ArmConfig
    from decisioning.policy import load_policy
    from models.registry import ModelRegistry
    from workers import metrics
    from workers.decide_loop import DecisionLoop
    from workers.engine import DecisionEngine
    from workers.model_holder import ModelHolder

    tune_process(settings)
    device = None if settings.device == "auto" else settings.device
    holder = ModelHolder(
        ModelRegistry(settings.registry_url, keys=settings.registry.keys()),
        settings.model_name,
        poll_s=settings.reload_poll_s,
        device=device,
        runtime=settings.runtime,
        threads=settings.torch_threads,
        flow=settings.flow_name,
    )
    champion = holder.load()
    policy = load_policy(settings.policy, known_features=champion.spec.feature_names)
    challenger_policy = (
        load_policy(settings.challenger_policy, known_features=champion.spec.feature_names)
        if settings.challenger_policy
        else None
    )
    challenger = holder.load_ref(settings.challenger_model) if settings.challenger_model else None
    engine = DecisionEngine(
        champion,
        policy,
        champion.spec,
        max_message_bytes=settings.max_message_bytes,
        score_timeout_s=settings.score_timeout_s,
        arms=ArmConfig(
            challenger_share=settings.challenger_share, shadow_share=settings.shadow_share
        ),
        challenger=challenger,
        challenger_policy=challenger_policy,
        model_name=settings.model_name,
        idempotency=make_idempotency(settings),
        threads=settings.torch_threads,
    )
    engine.warm_up()  # a cold first batch is several times slower: pay it before we are ready
    if serve_metrics:
        metrics.serve(settings.metrics_port, settings.metrics_host)
    loop = DecisionLoop(settings, engine, worker_name=worker_name, before_batch=holder.before_batch)
    return loop, holder


def make_idempotency(settings: WorkerSettings) -> Any:
    """The event-id claim store of a worker (None when ``dedupe_window_s`` is 0)."""
    from workers.idempotency import RedisIdempotency

    if settings.dedupe_window_s <= 0:
        return None
    return RedisIdempotency(settings.redis_url, settings.group_id, settings.dedupe_window_s)


class DecisionStep(bootsteps.StartStopStep):  # type: ignore[misc]
    """Started with ``--decide``; stops (finishing its batch) on warm shutdown (SIGTERM)."""

    label = "decisionflow decision loop"

    def __init__(self, parent: Any, decide: bool = False, **options: Any) -> None:
        super().__init__(parent, **options)
        self.enabled = bool(decide)
        self.runtimes: dict[str, DecisionRuntime] = {}

    def start(self, parent: Any) -> None:
        from workers import metrics

        settings = WorkerSettings()
        name = (getattr(parent, "hostname", None) or socket.gethostname()).replace("@", "-")
        for one in settings.flow_settings():
            loop, holder = build_loop(one, name, serve_metrics=False)
            flow = one.flow_name
            thread = threading.Thread(
                target=_run, args=(loop,), name=f"decision-loop-{flow}", daemon=True
            )
            self.runtimes[flow] = DecisionRuntime(loop, holder, thread)
            runtime.install(self.runtimes[flow], flow)  # reload_model finds it there
        metrics.serve(settings.metrics_port, settings.metrics_host)
        for flow, one_runtime in self.runtimes.items():
            assert one_runtime.thread is not None
            one_runtime.thread.start()
            log.info("decision loop started as %s for flow %s", name, flow)

    def stop(self, parent: Any) -> None:
        for one_runtime in self.runtimes.values():
            one_runtime.loop.stop()
        for flow, one_runtime in self.runtimes.items():
            if one_runtime.thread is not None:
                one_runtime.thread.join(timeout=60)
            runtime.uninstall(flow)
            log.info("decision loop stopped for flow %s", flow)
        self.runtimes = {}


def _run(loop: Any) -> None:
    try:
        loop.run()
    except Exception:  # pragma: no cover - the loop handles its own errors
        log.exception("decision loop crashed")
