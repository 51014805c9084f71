"""``python -m models.compare``: compare model families on one stratified holdout.

Prints the table and writes a markdown report (default ``docs/model-comparison.md``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from models.family import FAMILY_NAMES
from models.spec import load_spec
from models.training import compare_families, comparison_markdown

__all__ = ["main", "run_comparison"]


def run_comparison(
    spec_name: str = "credit_data",
    families: Sequence[str] = FAMILY_NAMES,
    seed: int = 0,
    out: str | Path | None = "docs/model-comparison.md",
    command: str | None = None,
    progress: bool = False,
    device: str | None = None,
) -> pd.DataFrame:
    """Run :func:`~models.training.compare_families`; write the markdown report to ``out``."""
    spec = load_spec(spec_name)
    table = compare_families(spec, families, seed, progress=progress, device=device)
    if out is not None:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        cmd = command or "python -m models.compare " + shlex.join(sys.argv[1:])
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(comparison_markdown(table, cmd.strip(), stamp), encoding="utf-8")
    return table


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m models.compare", description=__doc__)
    parser.add_argument("--spec", default="credit_data", help="packaged spec name or YAML path")
    parser.add_argument("--families", default=",".join(FAMILY_NAMES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="docs/model-comparison.md", help="'-' to skip writing")
    parser.add_argument("--device", default=None, help="torch device (default cuda if present)")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    table = run_comparison(
        args.spec,
        families,
        args.seed,
        None if args.out == "-" else args.out,
        progress=args.progress,
        device=args.device,
    )
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.drop(columns=["params"]).round(4).to_string())
    if args.out != "-":
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
