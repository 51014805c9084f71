"""Compare model families on one stratified holdout and write the markdown report.

The command is ``decisionflow models compare`` (it prints the table; ``--out`` writes this
report).
"""

from __future__ import annotations

import datetime as dt
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from models.data import load_frame
from models.family import FAMILY_NAMES
from models.spec import FeatureSpec, load_spec
from models.training import compare_families, comparison_markdown

__all__ = ["run_comparison"]


def run_comparison(
    spec_name: str | FeatureSpec = "credit_data",
    families: Sequence[str] = FAMILY_NAMES,
    seed: int = 0,
    out: str | Path | None = None,
    command: str | None = None,
    progress: bool = False,
    device: str | None = None,
    *,
    source: str | Path | None = None,
    df: pd.DataFrame | None = None,
    threshold: float = 0.5,
    tune: bool = True,
) -> pd.DataFrame:
    """Run :func:`~models.training.compare_families`; write the markdown report to ``out``
    when given (None: no file).

    The data is ``df`` when given, else ``source`` (overriding the spec's), else the spec's
    source. Threshold metrics use ``threshold``; ``tune=False`` trains the family defaults.
    """
    spec = spec_name if isinstance(spec_name, FeatureSpec) else load_spec(spec_name)
    frame = df if df is not None else load_frame(spec, source)
    table = compare_families(
        spec,
        families,
        seed,
        df=frame,
        tune=tune,
        progress=progress,
        device=device,
        threshold=threshold,
    )
    if out is not None:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        cmd = command or "decisionflow models compare " + shlex.join(sys.argv[1:])
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(comparison_markdown(table, cmd.strip(), stamp), encoding="utf-8")
    return table
