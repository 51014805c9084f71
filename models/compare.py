"""Compare model families on one stratified holdout and write the markdown report.

The command is ``decisionflow models compare`` (it prints the table too).
"""

from __future__ import annotations

import datetime as dt
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from models.family import FAMILY_NAMES
from models.spec import load_spec
from models.training import compare_families, comparison_markdown

__all__ = ["run_comparison"]


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
        cmd = command or "decisionflow models compare " + shlex.join(sys.argv[1:])
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(comparison_markdown(table, cmd.strip(), stamp), encoding="utf-8")
    return table
