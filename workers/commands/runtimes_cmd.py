"""`decisionflow models optimise NAME VERSION`, and the variants table `models list` prints.

Thin wrappers over :mod:`pipelines.optimise` (build, check and store the variants) and
:mod:`models.variants` (read their reports). Heavy imports happen inside the commands.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import click

__all__ = ["optimise_cmd", "variant_rows", "variants_table"]

_BATCHES = ("1", "32", "500", "2000")
_REFERENCE = "500"


def _num(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    number = float(value)
    if kind == "delta":
        return f"{number:.1e}"
    if kind == "auc":
        return f"{number:+.4f}"
    if kind == "share":
        return f"{number:.2%}"
    if kind == "ratio":
        return f"{number:.1f}x"
    return f"{number / 1000:.1f}k" if number >= 1000 else f"{number:.0f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    cells = [list(header), *[list(r) for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def variant_rows(reports: Mapping[str, Mapping[str, Any]], auto: str) -> list[list[str]]:
    """One row per variant report: status, device, parity, rows/s by batch, speed-up at 500,
    which runtimes make scores and reasons, and whether ``auto`` picks it."""
    rows = []
    for name, rep in sorted(reports.items()):
        parity = rep.get("parity") or {}
        speed = rep.get("speed") or {}
        rates = speed.get("rows_per_s") or {}
        native = speed.get("native_rows_per_s") or {}
        rows.append(
            [
                name,
                str(rep.get("status", "?")),
                str(rep.get("device", "?")),
                _num(parity.get("max_abs_delta"), "delta"),
                _num(parity.get("delta_roc_auc"), "auc"),
                _num(parity.get("agreement"), "share"),
                *(f"{_num(rates.get(b), 'rate')}/{_num(native.get(b), 'rate')}" for b in _BATCHES),
                _num((speed.get("speedup") or {}).get(_REFERENCE), "ratio"),
                f"{name}/{rep.get('reason_runtime', 'native')}",
                "yes" if name == auto else "",
            ]
        )
    return rows


_HEADER = [
    "variant",
    "status",
    "device",
    "max|Δ|",
    "ΔAUC",
    "agree",
    *(f"rows/s@{b} (native)" for b in _BATCHES),
    f"x native@{_REFERENCE}",
    "scores/reasons",
    "auto",
]


def variants_table(registry: Any, versions: Sequence[tuple[str, int]]) -> str | None:
    """The runtime variants of ``versions`` ((name, version) pairs) as a text table, None when
    none has any. ``auto`` marks what a CPU worker with ``DECISIONFLOW_RUNTIME=auto`` uses."""
    from models.runtimes import select_variant
    from models.variants import read_reports

    rows = []
    for name, version in versions:
        reports = read_reports(registry, name, version)
        if not reports:
            continue
        auto, _ = select_variant(reports, "auto", "cpu")
        rows += [[name, str(version), *r] for r in variant_rows(reports, auto)]
    if not rows:
        return None
    table = _table(["model", "version", *_HEADER], rows)
    note = (
        "rows/s: variant/native, timed in the same run; agree: decisions alike at the policy "
        "cut-offs on the holdout; native = the registered torch/scikit-learn model"
    )
    return f"runtime variants ({note})\n{table}"


def _ints(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r}: want comma-separated integers") from None
    if not values or min(values) < 1:
        raise click.BadParameter(f"{text!r}: want batch sizes >= 1")
    return values


@click.command("optimise")
@click.argument("name")
@click.argument("version")
@click.option(
    "--registry",
    "registry_url",
    default=None,
    help="Registry path or fsspec URL [default: $DECISIONFLOW_REGISTRY_URL or ./var/registry].",
)
@click.option(
    "--policy",
    "policies",
    multiple=True,
    help="Decision policy (shipped name or YAML path) whose cut-offs the variants must decide "
    "alike at; repeatable [default: every shipped policy].",
)
@click.option("--cutoff", "cutoffs", type=float, multiple=True, help="A cut-off instead.")
@click.option(
    "--bound",
    "bounds",
    multiple=True,
    help="Parity bound VARIANT.FIELD=NUMBER (fields: max_abs_delta, min_agreement, "
    "max_auc_drop), e.g. int8.min_agreement=0.999; repeatable.",
)
@click.option("--variants", default="onnx,int8,fp16,bf16", show_default=True)
@click.option("--source", default=None, help="Data for the holdout when the run's is gone.")
@click.option("--batch-sizes", default="1,32,500,2000", show_default=True)
@click.option("--min-seconds", type=float, default=0.2, show_default=True, help="Per timing.")
@click.option("--threads", type=int, default=1, show_default=True, help="As the workers run.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def optimise_cmd(
    name: str,
    version: str,
    registry_url: str | None,
    policies: tuple[str, ...],
    cutoffs: tuple[float, ...],
    bounds: tuple[str, ...],
    variants: str,
    source: str | None,
    batch_sizes: str,
    min_seconds: float,
    threads: int,
    as_json: bool,
) -> None:
    """Build runtime variants of VERSION of model NAME (ONNX, int8; fp16/bf16 on a GPU host),
    check each on the version's holdout against the native model and store it in the version
    with its parity and speed; one outside its bounds is stored as not servable."""
    from models.registry import ModelRegistry, default_registry_url
    from pipelines.optimise import optimise_registered

    url = registry_url or default_registry_url()
    try:
        summary = optimise_registered(
            url,
            name,
            version,
            policies=policies,
            cutoffs=cutoffs or None,
            source=source,
            bounds=bounds,
            variants=[v.strip() for v in variants.split(",") if v.strip()],
            batch_sizes=_ints(batch_sizes),
            min_seconds=min_seconds,
            threads=threads,
        )
    except (ValueError, LookupError, OSError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(summary, indent=1, sort_keys=True, default=str))
        return
    holdout = summary["holdout"]
    click.echo(
        f"{name} v{summary['version']}: holdout {holdout.get('source')} "
        f"(same as registered: {holdout.get('same_as_registered')}); cut-offs {summary['cutoffs']}"
    )
    for variant, line in summary["variants"].items():
        click.echo(f"  {variant}: {line['status']} - {line['detail']}")
    table = variants_table(ModelRegistry(url), [(name, int(summary["version"]))])
    if table:
        click.echo(table)
