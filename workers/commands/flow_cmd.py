"""`decisionflow flow ...`: onboard a use case from a table by configuration alone.

``flow init`` infers a feature spec from a CSV (:mod:`models.scaffold`), writes it with a
starter policy (:mod:`decisioning.policy_scaffold`) and a flow file naming both; ``flow
validate`` checks a spec (and policy) against the data (:mod:`models.checks`).

Paths in a written flow file (and the spec's ``source: csv:<path>``) are as given on the
command line: relative ones resolve against the folder ``decisionflow`` runs from, so run
``flow init`` and later commands from the same folder (the repository root), or pass
absolute paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

__all__ = ["flow_group", "register"]


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


def _flow_data(name: str, spec_path: Path, policy_path: Path, positive: str) -> dict[str, Any]:
    """A flow mapping with topics of its own (never the deployment's defaults)."""
    return {
        "name": name,
        "description": f"{name}: scored for the risk of the positive class {positive!r}.",
        "spec": str(spec_path),
        "policy": str(policy_path),
        "topics": {
            "events": f"events.{name}",
            "decisions": f"decisions.{name}",
            "shadow": f"decisions.{name}.shadow",
            "dlq": f"events.{name}.dlq",
            "outcomes": f"outcomes.{name}",
            "duplicates": f"decisions.{name}.duplicates",
        },
    }


def _echo_problems(problems: list[Any]) -> None:
    """Errors, then warnings, one ``column: message (seen: ...) -> fix`` line each."""
    for severity in ("error", "warning"):
        found = [p for p in problems if p.severity == severity]
        if found:
            click.echo(f"{len(found)} {severity}(s):")
            for problem in found:
                click.echo(f"  {problem}")


@click.command("init")
@click.option(
    "--csv",
    "csv_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="The table: a CSV file with a header row.",
)
@click.option("--label", required=True, help="The column holding the outcome.")
@click.option("--positive", required=True, help="The label value scored (HIGH score = risky).")
@click.option("--name", default=None, help="Flow, spec and model name [default: the CSV stem].")
@click.option(
    "--out-dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Where the three files go [default: flows/<name>].",
)
@click.option(
    "--entity-key",
    default=None,
    help="The column identifying a row [default: a unique ID-like column, else synthesised].",
)
@click.option("--force", is_flag=True, help="Overwrite files already there.")
def init_cmd(
    csv_path: str,
    label: str,
    positive: str,
    name: str | None,
    out_dir: str | None,
    entity_key: str | None,
    force: bool,
) -> None:
    """Infer a feature spec from a CSV; write it with a starter policy and a flow file.

    Writes <out-dir>/<name>.spec.yaml, <name>.policy.yaml and <name>.flow.yaml (paths as
    given, relative to the current folder) and prints the columns kept and left out. Exits 1
    when the label column or positive value is wrong (nothing written), or when the data has
    an error-level problem (files written: fix the data, then `flow validate`).
    """
    from decisioning.flow import parse_flow
    from decisioning.policy_scaffold import starter_policy, starter_policy_yaml
    from models.checks import errors
    from models.data import DataError, read_source, yaml_value
    from models.scaffold import column_notes, infer_spec, spec_name, spec_yaml
    from models.spec import SpecError

    flow_name = spec_name(name or Path(csv_path).stem)
    if name is not None and flow_name != name:
        raise click.BadParameter(
            f"use letters, digits, _ . - only (e.g. {flow_name})", param_hint="--name"
        )
    folder = Path(out_dir) if out_dir is not None else Path("flows") / flow_name
    paths = {kind: folder / f"{flow_name}.{kind}.yaml" for kind in ("spec", "policy", "flow")}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not force:
        raise click.ClickException(f"already there: {', '.join(existing)} (--force overwrites)")
    source = f"csv:{csv_path}"
    try:
        frame = read_source(source)
        spec, problems = infer_spec(
            frame,
            name=flow_name,
            label=label,
            positive=positive,
            source=source,
            entity_key=entity_key,
        )
    except (DataError, SpecError) as exc:
        raise _fail(exc) from None
    policy = starter_policy(flow_name, spec.feature_names, spec.label.positive)
    flow = parse_flow(
        _flow_data(flow_name, paths["spec"], paths["policy"], str(spec.label.positive)),
        f"flow {flow_name}",
    )
    folder.mkdir(parents=True, exist_ok=True)
    paths["spec"].write_text(spec_yaml(spec, column_notes(spec, frame, problems)), "utf-8")
    paths["policy"].write_text(starter_policy_yaml(policy), "utf-8")
    flow_text = "# Written by `decisionflow flow init`; paths relative to the current folder.\n"
    paths["flow"].write_text(
        flow_text + _yaml_dump(flow.model_dump(mode="json", exclude_none=True)), "utf-8"
    )
    for path in paths.values():
        click.echo(f"wrote {path}")
    click.echo(
        f"{len(frame)} rows; label {spec.label.column}, positive {yaml_value(spec.label.positive)}"
    )
    click.echo(f"entity key: {spec.entity_key.column}")
    kept = ", ".join(f"{c.name} ({c.type})" for c in spec.columns)
    click.echo(f"kept {len(spec.columns)} column(s): {kept}")
    used = {spec.entity_key.column, spec.label.column, *spec.feature_names}
    left_out = [p for p in problems if p.column not in used]
    if left_out:
        click.echo(f"left out {len(left_out)} column(s):")
        for problem in left_out:
            click.echo(f"  {problem}")
    _echo_problems([p for p in problems if p.column in used])
    if errors(problems):
        raise click.ClickException(
            f"the data has {len(errors(problems))} error(s) (above): fix them, then run "
            f"`decisionflow flow validate --flow {paths['flow']}`"
        )
    click.echo(f"next: decisionflow flow validate --flow {paths['flow']}")
    click.echo(f"      decisionflow models train --flow {paths['flow']} --promote")


def _yaml_dump(data: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


@click.command("validate")
@click.option("--flow", "flow_ref", default=None, help="A flow: shipped name or YAML path.")
@click.option("--spec", "spec_ref", default=None, help="A spec: packaged name or YAML path.")
@click.option("--policy", "policy_ref", default=None, help="A policy (with --spec only).")
@click.option("--source", default=None, help="Data source overriding the spec's (a CSV path...).")
def validate_cmd(
    flow_ref: str | None, spec_ref: str | None, policy_ref: str | None, source: str | None
) -> None:
    """Check a flow's (or a spec's) data and policy: print every problem with its fix.

    Exits 1 if any problem is an error (training would refuse the data, or the policy is
    invalid), 0 otherwise (warnings are printed).
    """
    from decisioning.flow import FlowError, load_flow
    from decisioning.policy import PolicyError, load_policy
    from models.checks import Problem, errors, find_problems
    from models.data import DataError, read_source
    from models.spec import SpecError, load_spec

    if (flow_ref is None) == (spec_ref is None):
        raise click.UsageError("give exactly one of --flow and --spec")
    if flow_ref is not None and policy_ref is not None:
        raise click.UsageError("--policy goes with --spec; a flow names its own policy")
    try:
        if flow_ref is not None:
            flow = load_flow(flow_ref)
            spec_ref, policy_ref = flow.spec, flow.policy
        assert spec_ref is not None
        spec = load_spec(spec_ref)
        src = source or spec.source
        if not src:
            raise DataError(f"spec {spec.name!r} has no source: give --source")
        frame = read_source(src)
    except (FlowError, SpecError, DataError, FileNotFoundError) as exc:
        raise _fail(exc) from None
    problems: list[Problem] = []
    if policy_ref is not None:
        try:
            load_policy(policy_ref, known_features=spec.feature_names)
        except PolicyError as exc:
            problems += [Problem("policy", text, fix=f"edit {policy_ref}") for text in exc.problems]
        except FileNotFoundError as exc:
            problems.append(Problem("policy", str(exc), fix="check the policy path"))
    problems += find_problems(spec, frame)
    click.echo(f"spec {spec.name}: {len(frame)} rows from {src}, {len(spec.columns)} feature(s)")
    _echo_problems(problems)
    n_errors, n_warnings = len(errors(problems)), len(problems) - len(errors(problems))
    if n_errors:
        click.echo(f"FAILED: {n_errors} error(s), {n_warnings} warning(s)")
        click.get_current_context().exit(1)
    click.echo(f"OK: no errors, {n_warnings} warning(s)")


@click.group("flow")
def flow_group() -> None:
    """Onboard a use case from a table: infer its spec, policy and flow; validate them."""


flow_group.add_command(init_cmd)
flow_group.add_command(validate_cmd)


def register(group: click.Group) -> None:
    """Add ``flow`` (init/validate) to the CLI group."""
    group.add_command(flow_group)
