"""`decisionflow policy ...`: cost-optimal cut-offs for a flow's policy, promotion, history.

Thin wrappers around :mod:`pipelines.policy_optimise`: ``optimise`` writes the flow's policy
with cost-optimal cut-offs for its champion as the next version (``--apply`` also promotes
it); ``promote`` makes a written version the flow's policy; ``history`` lists the promotions
(who, when, why, old, new). Versions, the promoted pointer and the history live in
``var/policies/<flow>/`` (``DECISIONFLOW_POLICIES_DIR``).
"""

from __future__ import annotations

import json
from typing import Any

import click

__all__ = ["policy_group", "register"]

_flow_option = click.option(
    "--flow",
    "flow_ref",
    default="credit_data",
    show_default=True,
    help="Decision flow: shipped name or YAML path.",
)
_why_option = click.option("--why", default=None, help="Reason recorded in the history.")
_who_option = click.option("--who", default=None, help="Who promotes [default: the OS user].")


def _registry(url: str | None) -> Any:
    from models.registry import ModelRegistry, default_registry_url
    from workers.settings import registry_keys

    return ModelRegistry(url or default_registry_url(), keys=registry_keys())


@click.group("policy")
def policy_group() -> None:
    """Decision policies of a flow: cost-optimal cut-offs, promotion, audit history."""


@policy_group.command("optimise")
@_flow_option
@click.option("--gain-good-approved", type=float, required=True, help="Value of a good approval.")
@click.option("--loss-bad-approved", type=float, required=True, help="Loss of a bad approval.")
@click.option("--review-cost", type=float, required=True, help="Cost of one manual review.")
@click.option(
    "--value-declined", type=float, default=0.0, show_default=True, help="Value of a decline."
)
@click.option(
    "--review-catch-rate",
    type=float,
    default=1.0,
    show_default=True,
    help="Share of bad applicants a review declines.",
)
@click.option("--source", default=None, help="Dataset to split like training (default: spec's).")
@click.option("--holdout", default=None, help="Labelled CSV/Parquet to use whole instead.")
@click.option("--segment", default=None, help="Optimise this segment's bands [default bands].")
@click.option("--apply", is_flag=True, help="Promote the new version (recorded in the history).")
@_why_option
@_who_option
@click.option("--registry", "registry_url", default=None, help="Registry path or fsspec URL.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def optimise_cmd(
    flow_ref: str,
    gain_good_approved: float,
    loss_bad_approved: float,
    review_cost: float,
    value_declined: float,
    review_catch_rate: float,
    source: str | None,
    holdout: str | None,
    segment: str | None,
    apply: bool,
    why: str | None,
    who: str | None,
    registry_url: str | None,
    as_json: bool,
) -> None:
    """Write the flow's policy with cost-optimal cut-offs for its champion as the next version.

    The champion scores labelled rows (its registered holdout by default); the cut-offs that
    maximise the expected value replace the default bands (or --segment's). Prints the band
    diff and the expected value per 1,000 decisions of the old and the new policy.
    """
    from decisioning.thresholds import Costs
    from pipelines.policy_optimise import optimise_flow_policy

    if source and holdout:
        raise click.UsageError("--source and --holdout exclude each other")
    try:
        costs = Costs(
            gain_good_approved=gain_good_approved,
            loss_bad_approved=loss_bad_approved,
            review_cost=review_cost,
            value_declined=value_declined,
            review_catch_rate=review_catch_rate,
        )
        run = optimise_flow_policy(
            flow_ref,
            costs,
            registry=_registry(registry_url),
            source=source,
            holdout=holdout,
            segment=segment,
            apply=apply,
            who=who,
            why=why,
        )
    except (ValueError, LookupError, OSError) as exc:  # data, spec, policy, flow, no champion
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(run.to_dict(), indent=1, default=str) if as_json else run.render())


@policy_group.command("promote")
@_flow_option
@click.option("--version", "version", required=True, help="A written version, e.g. 1.2.")
@_why_option
@_who_option
def promote_cmd(flow_ref: str, version: str, why: str | None, who: str | None) -> None:
    """Make a written policy VERSION the one the flow decides with (audited)."""
    from pipelines.policy_optimise import promote_policy

    try:
        event = promote_policy(flow_ref, version, who=who, why=why or "")
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    old, new = event["old"], event["new"]
    click.echo(
        f"flow {event['flow']}: policy {old['name']} {old['version']} -> {new['name']} "
        f"{new['version']} ({new['ref']})"
    )


@policy_group.command("history")
@_flow_option
def history_cmd(flow_ref: str) -> None:
    """The flow's policy promotions, oldest first, and the policy it decides with now."""
    from pipelines.policy_optimise import flow_policy_ref, policy_history

    try:
        events, current = policy_history(flow_ref), flow_policy_ref(flow_ref)
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    for e in events:
        click.echo(
            f"{e['ts']}  {e['who']}  {e['old']['version']} -> {e['new']['version']}  {e['why']}"
        )
    click.echo(f"current: {current}")


def register(group: click.Group) -> None:
    """Add ``policy`` (optimise/promote/history) to the CLI group."""
    group.add_command(policy_group)
