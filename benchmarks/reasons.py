"""Reason-method agreement: how often two explanation methods pick the same top-k features.

On the real ``credit_data`` table (every row, as events carry it) with the benchmark's
torch_mlp champion: ``integrated_gradients`` vs ``gradient_x_input`` through
``Model.explain_columns``, compared by ``models.explain.top_k_agreement`` (share of rows whose
top-``k`` positive-contribution feature sets are equal). Returns None when either function is
not there (then the report has no such line).
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Any

__all__ = ["METHODS", "reason_agreement"]

METHODS = ("integrated_gradients", "gradient_x_input")


def reason_agreement(registry: Path, k: int = 3, device: str = "cpu") -> dict[str, Any] | None:
    """``{"agreement", "k", "rows", "methods", "methods_used", "seconds"}`` or None."""
    explain = importlib.import_module("models.explain")
    agree = getattr(explain, "top_k_agreement", None)
    from models.data import load_frame
    from models.registry import ModelRegistry
    from workers.producer import events_from_frame

    model = ModelRegistry(registry).load("credit_data", "champion", device=device)
    if agree is None or not hasattr(model, "explain_columns"):
        return None
    spec = model.spec
    names = spec.feature_names
    rows = [f for _, f in events_from_frame(load_frame(spec), names, spec.entity_key.column)]
    columns = {name: [f.get(name) for f in rows] for name in names}
    out: dict[str, Any] = {"k": k, "rows": len(rows), "methods": list(METHODS)}
    contributions = []
    used = []
    seconds = []
    for method in METHODS:
        t0 = time.perf_counter()
        values, method_used = model.explain_columns(columns, len(rows), method)
        seconds.append(time.perf_counter() - t0)
        contributions.append(values)
        used.append(method_used)
    out["methods_used"] = used
    out["seconds"] = [round(s, 3) for s in seconds]
    out["agreement"] = float(agree(contributions[0], contributions[1], k=k))
    return out
