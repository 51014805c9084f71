"""`decisionflow sink` (and `sink quarantine`) and `decisionflow outcomes`: landing Kafka
records in the store."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from workers.sink import DecisionSink, SinkStats

__all__ = ["register", "run_until_stopped"]


def run_until_stopped(
    runner: DecisionSink, until_idle: float | None = None, stop_grace_s: float | None = 10.0
) -> SinkStats:
    """Run the sink with SIGTERM/SIGINT stopping it (within ``stop_grace_s``, always)."""
    from workers.sink import stop_on_signals

    restore = stop_on_signals(runner, grace_s=stop_grace_s)
    try:
        return runner.run(until_idle_s=until_idle)
    finally:
        restore()


@click.group(invoke_without_command=True)
@click.option(
    "--until-idle",
    type=float,
    default=None,
    help="Exit once no record arrived for this many seconds (demo/tests); default: run on.",
)
@click.option(
    "--stop-grace",
    type=float,
    default=10.0,
    show_default=True,
    help="After SIGTERM/SIGINT, exit anyway (status 1) when the batch in hand has not "
    "finished within this many seconds; nothing is lost, uncommitted records are re-read.",
)
@click.option(
    "--metrics-port",
    type=int,
    default=0,
    envvar="DECISIONFLOW_SINK_METRICS_PORT",
    help="Serve Prometheus /metrics on this port (0: off).",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    envvar="DECISIONFLOW_SINK_METRICS_HOST",
    help="Address /metrics binds (0.0.0.0 in containers).",
)
@click.pass_context
def sink(
    ctx: click.Context,
    until_idle: float | None,
    stop_grace: float,
    metrics_port: int,
    metrics_host: str,
) -> None:
    """Land events, decisions, shadow decisions, dead letters and outcomes in the store.

    The database is DECISIONFLOW_DATABASE_URL (the stack's PostgreSQL, else SQLite under var/).
    Records the database refuses for their content go to the quarantine table (see
    `decisionflow sink quarantine`); a database outage is retried with back-off.
    """
    if ctx.invoked_subcommand is not None:
        return
    from workers.cli_errors import require_kafka
    from workers.metrics import serve
    from workers.settings import SinkSettings
    from workers.sink import DecisionSink

    settings = SinkSettings()
    require_kafka(settings.kafka.bootstrap_servers)
    serve(metrics_port, metrics_host)
    stats = run_until_stopped(DecisionSink(settings), until_idle, stop_grace)
    click.echo(f"sink: {stats.summary()}")


@sink.command("quarantine")
@click.option(
    "--kind",
    type=click.Choice(["events", "decisions", "shadow", "dlq", "outcomes"]),
    default=None,
    help="Only records of this topic kind.",
)
@click.option("--limit", type=int, default=20, show_default=True, help="Records to list.")
@click.option("--raw", "show_raw", is_flag=True, help="Print each listed record's value.")
@click.option(
    "--retry",
    is_flag=True,
    help="Land the quarantined records again (after a fix); those that land leave the "
    "quarantine, the others stay with their new error.",
)
def quarantine(kind: str | None, limit: int, show_raw: bool, retry: bool) -> None:
    """List the records the sink could not land (counts per reason, newest records)."""
    from storage import store
    from workers.settings import SinkSettings
    from workers.sink import retry_quarantined

    engine = store.make_engine(SinkSettings().database_url.get_secret_value())
    try:
        if retry:
            done = retry_quarantined(engine, kind=kind)
            click.echo(f"retried: {done.landed} landed, {done.refused} still refused")
        _print_quarantine(engine, kind, limit, show_raw)
    finally:
        engine.dispose()


def _print_quarantine(engine: Engine, kind: str | None, limit: int, show_raw: bool) -> None:
    from storage import store

    summary = store.quarantine_summary(engine)
    if kind is not None:
        summary = summary[summary["kind"] == kind]
    total = int(summary["count"].sum()) if len(summary) else 0
    click.echo(f"quarantine: {total} records" + (f" ({kind})" if kind else ""))
    if not total:
        return
    for row in summary.itertuples(index=False):
        click.echo(
            f"  {row.count:>7}  {row.kind:<9} {row.stage:<5} {row.error_class:<32} "
            f"{row.first:%Y-%m-%d %H:%M:%S} .. {row.last:%Y-%m-%d %H:%M:%S}"
        )
    records = store.read_quarantine(engine, kind=kind, limit=limit)
    click.echo(f"newest {len(records)}:")
    for q in records:
        click.echo(
            f"  {q.source_topic}[{q.source_partition}]@{q.source_offset} {q.kind} {q.stage} "
            f"{q.quarantined_at:%Y-%m-%d %H:%M:%S} {len(q.raw or b'')} B  "
            f"{q.error_class}: {q.error[:200]}"
        )
        if show_raw:
            value = "<no value>" if q.raw is None else q.raw.decode("utf-8", "backslashreplace")
            value = value.replace("\x00", "\\x00")
            click.echo(f"    {value}")


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
