"""What the DAG files share: parse-time constants, and runtime lookups for task bodies.

At parse time only ``pendulum``, ``airflow.sdk`` and the standard library are imported (the
quality-alert asset, default task arguments, :func:`fail_fast`). The lookups import
decisionflow lazily, inside task bodies: every name a run uses derives from its decision flow
(:func:`flow_names`: spec, registry model, policy, drift reference, reports, work dirs), locations
follow :mod:`models.paths` (one layout for the demo, the CLI, workers and DAGs), the database
and registry come from the public settings of :mod:`workers`.

Airflow puts the DAGs folder on ``sys.path``, so the DAG files ``import common``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import pendulum
from airflow.sdk import Asset
from airflow.sdk.exceptions import AirflowFailException

QUALITY_ALERT = Asset("decisionflow://quality-alert")
# transient failures (store, broker, registry I/O) get two more tries; data errors none
DEFAULT_ARGS = {"retries": 2, "retry_delay": pendulum.duration(minutes=2)}
START_DATE = pendulum.datetime(2026, 1, 1, tz="UTC")
DEFAULT_FLOW = "credit_data"

__all__ = [
    "DEFAULT_ARGS",
    "DEFAULT_FLOW",
    "QUALITY_ALERT",
    "START_DATE",
    "FlowNames",
    "alerted_flow",
    "database_url",
    "fail_fast",
    "flow_names",
    "is_data_error",
    "registry_url",
    "run_dir",
]

F = TypeVar("F", bound=Callable[..., Any])


# ------------------------------------------------------------------ failures


def is_data_error(exc: BaseException) -> bool:
    """Whether ``exc`` is deterministic bad input that a retry cannot fix.

    Validation failures are ``ValueError`` subclasses (``DataError``, ``DataValidationError``,
    ``SpecError``, ``PolicyError``, ``FlowError``, ``EncoderError``, pydantic's
    ``ValidationError``...). Infrastructure errors (database, broker, registry I/O, any
    ``OSError``, even one that is also a ``ValueError``) are not: they keep their retries.
    """
    return isinstance(exc, ValueError) and not isinstance(exc, OSError)


def fail_fast(func: F) -> F:
    """Task-body decorator: a data error fails the task at once, without retries
    (``AirflowFailException`` chained to the original, same message); anything else is
    re-raised unchanged and retried. Put it under ``@task``."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            if is_data_error(exc):
                raise AirflowFailException(str(exc)) from exc
            raise

    wrapper.__fail_fast__ = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


# ------------------------------------------------------------------ the flow of a run


@dataclass(frozen=True)
class FlowNames:
    """Every name one run of a flow uses; all derive from the flow, none from an ambient
    default (``DECISIONFLOW_MODEL_NAME`` tells the *workers* which model to deploy)."""

    flow: str
    spec: str
    """Feature spec: packaged name or YAML path."""
    model: str
    """Registry model name (champion, challenger, alias history)."""
    policy: str
    """The policy the flow decides with: its promoted version's file, else the flow's own."""
    reference: str
    """Drift reference: training data of the promoted model."""
    reports: str
    """Root of the flow's reports (``<reports>/<flow>``)."""
    policies: str
    """The flow's written policy versions, the promoted one and their history."""

    def as_dict(self) -> dict[str, str]:
        """XCom form (task arguments)."""
        return asdict(self)


def flow_names(flow: str) -> FlowNames:
    """Resolve a flow (shipped name or YAML path) to the names a run of it uses."""
    from decisioning.flow import load_flow
    from models import paths
    from pipelines.policy_optimise import flow_policy_dir, flow_policy_ref

    f = load_flow(flow)
    return FlowNames(
        flow=f.name,
        spec=f.spec,
        model=f.model_name,
        policy=flow_policy_ref(f),
        reference=str(paths.reference_file(f.model_name)),
        reports=str(paths.reports_dir() / paths.safe_part(f.name)),
        policies=str(flow_policy_dir(f.name)),
    )


def alerted_flow(events: Mapping[Asset, Iterable[Any]] | None, default: str) -> str:
    """The flow whose quality alert started this run (the event's ``extra["flow"]``), else
    ``default`` (the ``flow`` Param). Alerts of several flows in one run are refused: each
    flow needs its own run."""
    flows: set[str] = set()
    if events:
        try:
            alerts = list(events[QUALITY_ALERT])
        except KeyError:
            alerts = []
        flows = {str(e.extra["flow"]) for e in alerts if (e.extra or {}).get("flow")}
    if len(flows) > 1:
        raise ValueError(
            f"quality alerts of several flows {sorted(flows)} started one run: trigger one run "
            "per flow with the `flow` Param"
        )
    return flows.pop() if flows else default


# ------------------------------------------------------------------ settings and places


def database_url() -> str:
    """The store's SQLAlchemy URL (secret: pass it to functions, never log or XCom it)."""
    from workers import SinkSettings

    return SinkSettings().database_url.get_secret_value()


def registry_url() -> str:
    """Where the model registry lives."""
    from workers import SinkSettings

    return SinkSettings().registry_url


def run_dir(dag_id: str, flow: str, run_id: str) -> str:
    """A work dir for one DAG run of one flow (created): ``<runs>/<dag>/<flow>/<run>``, the
    run id made filesystem-safe."""
    from models import paths

    path = paths.runs_dir() / dag_id / paths.safe_part(flow) / paths.safe_part(run_id)
    path.mkdir(parents=True, exist_ok=True)
    return str(path)
