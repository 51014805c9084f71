"""`decisionflow replay`: re-decide history through another model and/or policy."""

from __future__ import annotations

import click

__all__ = ["register"]


@click.command()
@click.option(
    "--source",
    type=click.Choice(["kafka", "store"]),
    default="kafka",
    show_default=True,
    help="Kafka retention (events + decisions topics) or the store.",
)
@click.option(
    "--model",
    "model_ref",
    default="recorded",
    show_default=True,
    help="'recorded' (each event's own version), an alias or a version number.",
)
@click.option(
    "--policy",
    "policy_name",
    default=None,
    help="Policy name or YAML path (default: the deployed policy).",
)
@click.option("--by", default="", help="Group the change table by these columns (arm,segment).")
@click.option("--limit", type=int, default=None, help="Replay at most this many events.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the replayed decisions here (CSV or Parquet).",
)
def replay(
    source: str,
    model_ref: str,
    policy_name: str | None,
    by: str,
    limit: int | None,
    out: str | None,
) -> None:
    """Re-decide historical events and print what would change."""
    from decisioning.policy import load_policy
    from models.registry import ModelRegistry
    from workers.replay import decisions_from_records, from_store, read_topic, replay_records
    from workers.settings import SinkSettings

    settings = SinkSettings()
    if source == "kafka":
        opts = settings.kafka.client_options()
        bootstrap = opts.pop("bootstrap_servers")
        opts.pop("client_id", None)
        events = read_topic(bootstrap, settings.topics.events, **opts)
        recorded = decisions_from_records(read_topic(bootstrap, settings.topics.decisions, **opts))
    else:
        events, recorded = from_store(settings.database_url.get_secret_value())
    if recorded.empty:
        raise click.ClickException("no recorded decisions to compare with")
    events = events[:limit] if limit else events
    registry = ModelRegistry(settings.registry_url, keys=settings.registry.keys())

    def load_model(version: int | None) -> object:
        ref: str | int = (
            version
            if version is not None
            else (int(model_ref) if model_ref.isdigit() else model_ref)
        )
        if ref == "recorded":
            ref = "champion"
        return registry.load(settings.model_name, ref, device="cpu")

    policy = load_policy(policy_name or "credit_v1")
    result = replay_records(
        events,
        recorded,
        policy,
        load_model,  # type: ignore[arg-type]
        model_ref=model_ref,
        by=tuple(b for b in by.split(",") if b),
    )
    click.echo(
        f"replayed {result.compared} decisions with policy {policy.name} "
        f"v{policy.version}, model {model_ref}: {result.identical} identical "
        f"({result.identical / max(result.compared, 1):.1%})"
    )
    if not result.changes.empty:
        click.echo(result.changes.to_string(index=False))
    if out:
        frame = result.replayed
        frame.to_parquet(out) if out.endswith(".parquet") else frame.to_csv(out, index=False)
        click.echo(f"replayed decisions written to {out}")


def register(group: click.Group) -> None:
    """Add `replay` to the CLI group."""
    group.add_command(replay)
