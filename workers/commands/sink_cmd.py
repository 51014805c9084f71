"""`decisionflow sink` and `decisionflow outcomes`: landing Kafka records in the store."""

from __future__ import annotations

import signal
from typing import Any

import click

__all__ = ["register"]


@click.command()
@click.option(
    "--until-idle",
    type=float,
    default=None,
    help="Exit once no record arrived for this many seconds (demo/tests); default: run on.",
)
def sink(until_idle: float | None) -> None:
    """Land events, decisions, shadow decisions, dead letters and outcomes in the store.

    The database is DECISIONFLOW_DATABASE_URL (the stack's PostgreSQL, else SQLite under var/).
    """
    from workers.cli_errors import require_kafka
    from workers.settings import SinkSettings
    from workers.sink import DecisionSink

    settings = SinkSettings()
    require_kafka(settings.kafka.bootstrap_servers)
    runner = DecisionSink(settings)

    def _stop(*_: Any) -> None:
        runner.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    stats = runner.run(until_idle_s=until_idle)
    click.echo(f"sink: {stats.summary()}")


@click.command()
@click.option("--spec", "spec_name", default="credit_data", show_default=True)
@click.option("--source", default=None, help="CSV/Parquet with labels (default: the spec's).")
@click.option(
    "--share",
    type=float,
    default=1.0,
    show_default=True,
    help="Share of decided events that get their label.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--idle-ms", type=int, default=3000, show_default=True)
def outcomes(spec_name: str, source: str | None, share: float, seed: int, idle_ms: int) -> None:
    """Publish outcomes (labels) for decided events, looked up in the labelled dataset.

    Demo helper: reads the committed decisions, finds each entity's true label in the
    spec's table (the label the worker never saw) and writes it to the outcomes topic.
    """
    from models.data import load_frame
    from models.spec import load_spec
    from workers.settings import SinkSettings
    from workers.sink import labels_for_decisions, publish_outcomes

    spec = load_spec(spec_name)
    frame = load_frame(spec, source)
    truth = dict(
        zip(
            frame[spec.entity_key.column].astype(str),
            frame[spec.label.column].astype(str),
            strict=True,
        )
    )
    settings = SinkSettings()
    picked = labels_for_decisions(settings, truth, share=share, seed=seed, idle_ms=idle_ms)
    n = publish_outcomes(settings, picked)
    click.echo(f"published {n} outcomes to {settings.topics.outcomes}")


def register(group: click.Group) -> None:
    """Add the sink commands to the CLI group."""
    group.add_command(sink)
    group.add_command(outcomes)
