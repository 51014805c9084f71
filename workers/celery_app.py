"""The Celery application: decision workers, batch jobs and remote control.

Start a decision worker (one per GPU; ``--pool=solo`` keeps the model in this process):

    decisionflow worker --name w1        # = celery -A workers.celery_app worker --pool=solo
                                         #   -n w1@%h -Q cpu ... --decide

``--decide`` adds the Kafka decision-loop bootstep; without it the worker only runs batch jobs
(``score_file``) from its queues (``cpu``, ``gpu``).
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import setup_logging
from click import Option

from workers.settings import WorkerSettings

__all__ = ["app"]

_settings = WorkerSettings()

app = Celery("decisionflow", broker=_settings.redis_url, backend=_settings.redis_url)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_default_queue="cpu",
    task_routes={"decisionflow.score_file": {"queue": "cpu"}},
    broker_connection_retry_on_startup=True,
    broker_transport_options={"visibility_timeout": 6 * 3600},
    worker_hijack_root_logger=False,
    # task events on, so Flower shows score_file and the control tasks as they run
    worker_send_task_events=True,
    task_send_sent_event=True,
    imports=("workers.tasks", "workers.control"),
)
app.user_options["worker"].add(
    Option(
        ["--decide"],
        is_flag=True,
        default=False,
        help="Run the Kafka decision loop in this worker.",
    )
)

from workers.bootstep import DecisionStep  # noqa: E402  (needs `app` defined)

app.steps["worker"].add(DecisionStep)


@setup_logging.connect  # type: ignore[untyped-decorator]
def _json_logs(loglevel: Any = None, **_: Any) -> None:
    """Workers log JSON lines (Celery leaves logging to us when this signal is connected)."""
    from workers.logs import configure_json_logging

    configure_json_logging(loglevel or _settings.log_level)
