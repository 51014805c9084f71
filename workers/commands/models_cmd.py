"""`decisionflow models ...`: train, evaluate, promote, rollback, list and compare models;
sign versions, export/import them as signed bundles.

Thin wrappers: every command calls one function of the ``models`` package. The registry URL
defaults to ``$DECISIONFLOW_REGISTRY_URL``, else ``./var/registry``. Heavy imports (torch,
scikit-learn) happen inside the commands so ``decisionflow --help`` stays fast.
"""

from __future__ import annotations

import json
import math
import shlex
from typing import Any

import click

from workers.commands.runtimes_cmd import optimise_cmd, variants_table

__all__ = ["models_group", "register"]

_FAMILIES_HELP = "Comma-separated model families (torch_mlp, logreg, hgb)."
_HEADLINE = ("roc_auc", "pr_auc", "f1", "brier", "log_loss")
_THRESHOLD_METRICS = ("accuracy", "precision", "recall", "f1")


def _registry(url: str | None) -> Any:
    from models.registry import ModelRegistry, default_registry_url
    from workers.settings import registry_keys

    return ModelRegistry(url or default_registry_url(), keys=registry_keys())


def _families(value: str) -> list[str]:
    from models.family import FAMILY_NAMES

    names = [f.strip() for f in value.split(",") if f.strip()]
    unknown = [f for f in names if f not in FAMILY_NAMES]
    if unknown or not names:
        raise click.BadParameter(f"unknown family {unknown}; choose from {list(FAMILY_NAMES)}")
    return names


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4f}"
    return "-" if value is None else str(value)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    cells = [header, *[[_fmt(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


def _threshold_line(threshold: float) -> str:
    """The line stating the cut-off of the hard-decision metrics printed above it."""
    return f"threshold metrics ({', '.join(_THRESHOLD_METRICS)}) at threshold {threshold:g}"


threshold_option = click.option(
    "--threshold",
    type=click.FloatRange(0.0, 1.0),
    default=0.5,
    show_default=True,
    help="Cut-off of the hard-decision metrics (accuracy, precision, recall, f1): "
    "score >= threshold counts as positive.",
)

registry_option = click.option(
    "--registry",
    "registry_url",
    default=None,
    help="Registry path or fsspec URL [default: $DECISIONFLOW_REGISTRY_URL or ./var/registry].",
)


@click.command("train")
@click.option(
    "--flow",
    "flow_ref",
    default=None,
    help="Decision flow (shipped name or YAML path): its spec, under its model name.",
)
@click.option(
    "--spec",
    "spec_ref",
    default=None,
    help="Packaged spec name or path to a spec YAML [default: the flow's, else credit_data].",
)
@click.option("--families", default="torch_mlp,logreg,hgb", show_default=True, help=_FAMILIES_HELP)
@registry_option
@click.option(
    "--name", default=None, help="Model name in the registry [default: the flow's, else spec name]."
)
@click.option("--source", default=None, help="Data source overriding the spec's.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--test-size", type=float, default=0.2, show_default=True)
@click.option(
    "--tune/--no-tune",
    default=True,
    show_default=True,
    help="Choose hyper-parameters on an inner validation split.",
)
@click.option(
    "--promote/--no-promote",
    default=False,
    show_default=True,
    help="Promote the best candidate to champion if it passes the gate.",
)
@click.option("--primary", default="roc_auc", show_default=True, help="Gate primary metric.")
@click.option(
    "--margin",
    type=float,
    default=0.0,
    show_default=True,
    help="Required improvement of the primary metric.",
)
@click.option("--device", default=None, help="Torch device [default: cuda if present].")
@click.option(
    "--min-rows", type=int, default=500, show_default=True, help="Labelled rows needed to train."
)
@threshold_option
def train_cmd(
    flow_ref: str | None,
    spec_ref: str | None,
    families: str,
    registry_url: str | None,
    name: str | None,
    source: str | None,
    seed: int,
    test_size: float,
    tune: bool,
    promote: bool,
    primary: str,
    margin: float,
    device: str | None,
    min_rows: int,
    threshold: float,
) -> None:
    """Train candidate families, gate the best against the champion and register it.

    The same pipeline as the retrain DAG (pipelines.workdir): the data check (rows, missing
    values, the rarer class at least the spec's label.min_share), one split, the best
    candidate by the gate metric, the champion scored on the same holdout. The best candidate
    is registered (refused or not); it becomes champion with --promote when the gate passes,
    else challenger. The run's files stay in the runs folder (var/runs/decisionflow_train/...).
    """
    import time
    import uuid

    from models import paths
    from models.spec import SpecError, load_spec
    from pipelines.workdir import run_retrain

    registry = _registry(registry_url)
    run_id = time.strftime("%Y%m%dT%H%M%S-") + uuid.uuid4().hex[:6]
    work_dir = paths.runs_dir() / "decisionflow_train" / run_id
    try:
        if flow_ref is not None:
            from decisioning.flow import load_flow

            flow = load_flow(flow_ref)
            spec_ref, name = spec_ref or flow.spec, name or flow.model_name
        spec_ref = spec_ref or "credit_data"
        spec = load_spec(spec_ref)
        model_name = name or spec.name
        result = run_retrain(
            str(work_dir),
            spec_ref,
            registry.url,
            model_name,
            _families(families),
            source=source,
            tune=tune,
            seed=seed,
            test_size=test_size,
            min_rows=min_rows,
            metric=primary,
            margin=margin,
            promote=promote,
            reference_path=str(paths.reference_file(model_name)) if promote else None,
            device=device,
            threshold=threshold,
        )
    except (SpecError, ValueError, LookupError, OSError) as exc:  # DataValidationError too
        raise _fail(exc) from exc
    evaluation = json.loads((work_dir / "evaluation.json").read_text())
    rows = [
        [fam, *(res["metrics"].get(m) for m in _HEADLINE)]
        for fam, res in evaluation["candidates"].items()
    ]
    click.echo(_table(["family", *_HEADLINE], rows))
    click.echo(_threshold_line(threshold))
    registered, promotion = result["registered"], result["promotion"]
    click.echo(f"best: {evaluation['best']} -> registered {model_name} v{registered['version']}")
    word = (
        "PROMOTED to champion" if promotion["promoted"] else f"{promotion['alias']}, NOT champion"
    )
    click.echo(f"gate: {word}")
    for reason in promotion["reasons"]:
        click.echo(f"  - {reason}")


@click.command("evaluate")
@click.argument("name")
@click.argument("ref", default="champion")
@registry_option
@click.option("--source", default=None, help="Data source overriding the spec's.")
@click.option("--seed", type=int, default=None, help="Holdout seed [default: as registered].")
@threshold_option
@click.option("--json", "as_json", is_flag=True, help="Print the full metrics as JSON.")
def evaluate_cmd(
    name: str,
    ref: str,
    registry_url: str | None,
    source: str | None,
    seed: int | None,
    threshold: float,
    as_json: bool,
) -> None:
    """Re-evaluate version/alias REF of model NAME on its holdout.

    Hard-decision metrics are at --threshold (``threshold`` in the output; the ``@0.5`` lines
    are at 0.5 whatever it is).
    """
    from pipelines.retrain import evaluate_registered

    try:
        metrics, same = evaluate_registered(
            _registry(registry_url), name, ref, seed, source, threshold=threshold
        )
    except (ValueError, LookupError, OSError, RuntimeError) as exc:
        raise _fail(exc) from exc
    if as_json:
        click.echo(json.dumps({"metrics": metrics.to_dict(), "same_holdout": same}, indent=1))
        return
    for key, value in metrics.headline().items():
        click.echo(f"{key:>14}: {_fmt(value)}")
    click.echo(_threshold_line(threshold))
    if not same:
        click.echo("note: this holdout differs from the one recorded at registration", err=True)


@click.command("promote")
@click.argument("name")
@click.argument("version")
@click.option("--alias", default="champion", show_default=True)
@click.option("--reason", required=True, help="Why (goes into the alias history).")
@registry_option
def promote_cmd(name: str, version: str, alias: str, reason: str, registry_url: str | None) -> None:
    """Point ALIAS of model NAME at VERSION (manual promotion, recorded in the history)."""
    try:
        event = _registry(registry_url).promote(name, version, alias, reason)
    except (ValueError, LookupError, RuntimeError) as exc:
        raise _fail(exc) from exc
    click.echo(f"{name}: {alias} v{event.from_version} -> v{event.to_version}")


@click.command("rollback")
@click.argument("name")
@click.option("--alias", default="champion", show_default=True)
@click.option("--reason", default="manual rollback", show_default=True)
@registry_option
def rollback_cmd(name: str, alias: str, reason: str, registry_url: str | None) -> None:
    """Restore the version ALIAS pointed to before its latest promotion."""
    try:
        event = _registry(registry_url).rollback(name, alias, reason)
    except (ValueError, LookupError, RuntimeError) as exc:
        raise _fail(exc) from exc
    click.echo(f"{name}: {alias} rolled back v{event.from_version} -> v{event.to_version}")


@click.command("list")
@click.argument("name", required=False)
@registry_option
def list_cmd(name: str | None, registry_url: str | None) -> None:
    """Table of versions (metrics, aliases) of model NAME, or of every model."""
    registry = _registry(registry_url)
    try:
        names = [name] if name else registry.list_models()
        if not names:
            click.echo(f"no models in {registry.url}")
            return
        rows = [
            [
                v.name,
                v.version,
                v.family,
                ",".join(v.aliases) or "",
                *(v.metrics.get(m) for m in _HEADLINE),
                v.created_at[:19],
            ]
            for n in names
            for v in registry.list_versions(n)
        ]
    except (ValueError, LookupError, RuntimeError) as exc:
        raise _fail(exc) from exc
    click.echo(_table(["model", "version", "family", "aliases", *_HEADLINE, "created"], rows))
    variants = variants_table(registry, [(str(r[0]), int(r[1])) for r in rows])
    if variants:  # each version's runtime variants, with parity and speed
        click.echo("\n" + variants)


@click.command("compare")
@click.option("--spec", "spec_ref", default="credit_data", show_default=True)
@click.option("--families", default="torch_mlp,logreg,hgb", show_default=True, help=_FAMILIES_HELP)
@click.option("--source", default=None, help="Data source overriding the spec's.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--tune/--no-tune",
    default=True,
    show_default=True,
    help="Choose hyper-parameters on an inner validation split.",
)
@threshold_option
@click.option(
    "--min-rows", type=int, default=500, show_default=True, help="Labelled rows needed to train."
)
@click.option(
    "--out",
    default=None,
    help="Also write the markdown report to this file [default: none; '-' none too].",
)
@click.option("--device", default=None, help="Torch device [default: cuda if present].")
@click.option("--progress/--no-progress", default=False, show_default=True)
def compare_cmd(
    spec_ref: str,
    families: str,
    source: str | None,
    seed: int,
    tune: bool,
    threshold: float,
    min_rows: int,
    out: str | None,
    device: str | None,
    progress: bool,
) -> None:
    """Compare families on one stratified holdout; print the table (--out: write the report).

    The data passes the same check as `models train` first (rows, missing values, the rarer
    class at least the spec's label.min_share).
    """
    from models.compare import run_comparison
    from models.data import load_frame
    from models.spec import SpecError, load_spec
    from pipelines.retrain import check_training_data

    names = _families(families)
    out = None if out == "-" else out
    args = ["--spec", spec_ref, "--families", families, "--seed", str(seed)]
    if source is not None:
        args += ["--source", source]
    if not tune:
        args.append("--no-tune")
    if threshold != 0.5:
        args += ["--threshold", f"{threshold:g}"]
    command = shlex.join(["decisionflow", "models", "compare", *args])
    try:
        spec = load_spec(spec_ref)
        frame = load_frame(spec, source)
        check_training_data(frame, spec, min_rows=min_rows, origin=source or str(spec.source))
        table = run_comparison(
            spec,
            names,
            seed,
            out,
            command=command,
            progress=progress,
            device=device,
            df=frame,
            threshold=threshold,
            tune=tune,
        )
    except (SpecError, ValueError, LookupError, OSError) as exc:  # DataValidationError too
        raise _fail(exc) from exc
    metrics = ["roc_auc", "pr_auc", "log_loss", "brier", *_THRESHOLD_METRICS]
    rows = [
        [fam, *(float(table.loc[fam, m]) for m in metrics), table.loc[fam, "fit_seconds"]]
        for fam in table.index
    ]
    click.echo(_table(["family", *metrics, "fit_s"], rows))
    click.echo(_threshold_line(threshold))
    if out is not None:
        click.echo(f"wrote {out}")


@click.command("sign")
@click.argument("name")
@click.argument("version")
@click.option(
    "--force",
    is_flag=True,
    help="Also re-sign a version whose signature fails (e.g. made with a retired key).",
)
@registry_option
def sign_cmd(name: str, version: str, force: bool, registry_url: str | None) -> None:
    """Sign VERSION of model NAME with the signing key (training host only).

    For versions registered before signing existed: workers refuse them until signed. Signing
    vouches for the content: the files must match their manifest, and you should have checked
    the version (where it came from, its metrics) first.
    """
    try:
        result = _registry(registry_url).sign(name, version, force=force)
    except (ValueError, LookupError, RuntimeError, OSError) as exc:
        raise _fail(exc) from exc
    if not result.signed:
        click.echo(f"{name} v{result.version}: already signed with key {result.key_id}")
        return
    click.echo(f"{name} v{result.version}: was: {result.before}")
    click.echo(f"{name} v{result.version}: signed with key {result.key_id}")


@click.command("export")
@click.argument("name")
@click.argument("version")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, writable=True),
    help="Bundle file to write (.tar; .tar.gz/.tgz compressed).",
)
@registry_option
def export_cmd(name: str, version: str, out: str, registry_url: str | None) -> None:
    """Write VERSION (number, alias or latest) of model NAME as one signed bundle."""
    try:
        number = _registry(registry_url).export_bundle(name, version, out)
    except (ValueError, LookupError, RuntimeError, OSError) as exc:
        raise _fail(exc) from exc
    click.echo(f"exported {name} v{number} to {out}")


@click.command("import")
@click.argument("bundle", type=click.Path(dir_okay=False))
@registry_option
def import_cmd(bundle: str, registry_url: str | None) -> None:
    """Add the version in BUNDLE (from `models export`) under its own name and number.

    The signature and every checksum are checked before anything is written; an existing,
    different version of the same number is never overwritten. Aliases do not move.
    """
    registry = _registry(registry_url)
    try:
        result = registry.import_bundle(bundle)
    except (ValueError, LookupError, RuntimeError, OSError) as exc:
        raise _fail(exc) from exc
    word = "imported" if result.created else "already present (identical), kept"
    click.echo(f"{result.name} v{result.version}: {word} in {registry.url}")


@click.command("keygen")
@click.option(
    "--out-dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for registry_signing.pem (private, mode 0600) and registry_verify.pem.",
)
def keygen_cmd(out_dir: str) -> None:
    """Generate an Ed25519 key pair for signing the registry (never overwrites a key)."""
    from pathlib import Path

    from models.signing import SIGNING_KEY_ENV, VERIFY_KEY_ENV, generate_key_pair

    try:
        private, public = generate_key_pair(Path(out_dir))
    except (RuntimeError, OSError) as exc:
        raise _fail(exc) from exc
    click.echo(f"signing key (training host only): {SIGNING_KEY_ENV}={private}")
    click.echo(f"verify key (every host that loads models): {VERIFY_KEY_ENV}={public}")


_COMMANDS = (
    train_cmd,
    evaluate_cmd,
    promote_cmd,
    rollback_cmd,
    list_cmd,
    compare_cmd,
    sign_cmd,
    export_cmd,
    import_cmd,
    keygen_cmd,
    optimise_cmd,  # workers.commands.runtimes_cmd
)


@click.group("models")
def models_group() -> None:
    """Train, evaluate, compare and promote models; inspect, sign, export and import versions."""


for _command in _COMMANDS:
    models_group.add_command(_command)


def register(group: click.Group) -> None:
    """Add ``models`` (train/evaluate/promote/rollback/list/compare/sign/export/import/keygen)
    to the CLI group; each command exists once, under ``models``."""
    group.add_command(models_group)
