"""Runtime variants in-process: rows/s per runtime and batch size, with their parity beside.

The benchmark's torch_mlp champion, and an hgb and a logreg model trained on the same training
rows of the real credit table (seconds), are optimised by :func:`models.optimise.optimise_model`
exactly as ``decisionflow models optimise`` does: each variant (onnx, int8 on CPU; fp16/bf16
on CUDA when a GPU is present) is checked on the held-out rows against the native runtime
(max |Δscore|, ΔROC-AUC, decision agreement at the shipped policies' cut-offs) and timed per
batch size beside the native runtime in the same run, one thread each (as workers run).
Scoring only: the encoding, the same for every runtime, is done once before timing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["BATCH_SIZES", "run_runtimes", "runtimes_section"]

BATCH_SIZES = (1, 32, 500, 2000)
_FAMILIES = ("torch_mlp", "hgb", "logreg")


def _models(registry: Path) -> tuple[dict[str, Any], Any]:
    """The champion and the other two families on its training rows; the held-out rows."""
    from models.data import holdout_split, load_frame
    from models.registry import ModelRegistry
    from models.spec import load_spec
    from models.training import train_family

    spec = load_spec("credit_data")
    train, holdout = holdout_split(load_frame(spec), spec, 0.25, seed=1)  # as build_registry
    champion = ModelRegistry(registry).load(spec.name, "champion", device="cpu")
    models: dict[str, Any] = {"torch_mlp": champion}
    for family in ("hgb", "logreg"):
        models[family] = train_family(family, train, spec, None, seed=1, device="cpu")
    return models, holdout


def _row(family: str, runtime: str, report: dict[str, Any] | None, native: Any) -> dict[str, Any]:
    if report is None:  # the native runtime itself
        rates = dict(native)
        return {"family": family, "runtime": runtime, "status": "reference", "device": "cpu",
                "rows_per_s": rates, "ratio": {k: 1.0 for k in rates}}  # fmt: skip
    parity, speed = report.get("parity") or {}, report.get("speed") or {}
    return {
        "family": family,
        "runtime": runtime,
        "status": report["status"],
        "device": report["device"],
        "rows_per_s": speed.get("rows_per_s", {}),
        "ratio": speed.get("speedup", {}),
        "max_abs_delta": parity.get("max_abs_delta"),
        "delta_roc_auc": parity.get("delta_roc_auc"),
        "agreement": parity.get("agreement"),
    }


def run_runtimes(
    registry: Path, min_seconds: float, batch_sizes: tuple[int, ...] = BATCH_SIZES
) -> dict[str, Any]:
    """``{"rows": [per family and runtime], "not_built": [...], "cutoffs", ...}``."""
    from benchmarks.scoring import device_info
    from models.optimise import OptimiseSettings, optimise_model
    from pipelines.optimise import policy_cutoffs

    models, holdout = _models(registry)
    cutoffs = policy_cutoffs()
    settings = OptimiseSettings(
        cutoffs=cutoffs, batch_sizes=batch_sizes, min_seconds=min_seconds, threads=1
    )
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for family in _FAMILIES:
        print(f"[bench] runtimes: {family}", flush=True)
        outcomes = optimise_model(models[family], holdout, settings, {"source": "bench holdout"})
        built = [o for o in outcomes if o.report is not None and o.report.get("speed")]
        cpu = [o for o in built if o.report and o.report["device"] == "cpu"]
        if cpu and cpu[0].report:
            rows.append(_row(family, "native", None, cpu[0].report["speed"]["native_rows_per_s"]))
        rows += [_row(family, o.variant, o.report, None) for o in built]
        skipped += [
            {"family": family, "variant": o.variant, "status": o.status, "detail": o.detail}
            for o in outcomes
            if o not in built
        ]
    return {
        "batch_sizes": list(batch_sizes),
        "threads": 1,
        "min_seconds": min_seconds,
        "cutoffs": cutoffs,
        "holdout_rows": len(holdout),
        "device": device_info(),
        "rows": rows,
        "not_built": skipped,
    }


def _cell(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    v = float(value)
    return {"rate": f"{v:,.0f}", "x": f"{v:.2f}x", "delta": f"{v:.1e}", "auc": f"{v:+.4f}"}.get(
        kind, f"{v:.2%}"
    )


def _verdict(rows: list[dict[str, Any]], full: bool) -> str:
    if not full:
        return "Quick mode: timings too short to judge, no verdict (run the full benchmark)."
    best = []
    for family in dict.fromkeys(r["family"] for r in rows):
        servable = [
            r for r in rows if r["family"] == family and r["status"] in ("servable", "reference")
        ]
        top = max(servable, key=lambda r: float(r["rows_per_s"].get("500") or 0), default=None)
        if top is not None:
            best.append(f"{family} {top['runtime']} ({_cell(top['ratio'].get('500'), 'x')})")
    return "Fastest servable runtime at batch 500 (x native): " + ", ".join(best) + "."


def runtimes_section(res: dict[str, Any]) -> list[str]:
    """The report's *Score runtimes* section (empty when the phase did not run)."""
    rt = res.get("runtimes") or {}
    rows = rt.get("rows") or []
    if not rows:
        return []
    sizes = [str(b) for b in rt.get("batch_sizes", BATCH_SIZES)]
    dev = rt.get("device") or {}
    cuda = dev.get("name") if dev.get("device") == "cuda" else dev.get("cuda", "n/a")
    lines = ["", "### Score runtimes (rows/s by batch size; parity on held-out rows)", ""]
    lines += [
        f"{rt.get('holdout_rows')} held-out credit_data rows; {rt.get('threads')} thread per "
        f"runtime; model stage only (the encoding, the same for every runtime, is not timed); "
        f"ratios against the native runtime timed in the same run; decision agreement at the "
        f"shipped policies' cut-offs {rt.get('cutoffs')}; CUDA: {cuda}.",
        "",
    ]
    header = ["family", "runtime", "status", *sizes, *(f"x native @{b}" for b in sizes)]
    header += ["max abs Δ", "ΔROC-AUC", "agreement"]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    for r in rows:
        cells = [r["family"], r["runtime"], r["status"]]
        cells += [_cell(r["rows_per_s"].get(b), "rate") for b in sizes]
        cells += [_cell(r["ratio"].get(b), "x") for b in sizes]
        cells += [
            _cell(r.get("max_abs_delta"), "delta"),
            _cell(r.get("delta_roc_auc"), "auc"),
            _cell(r.get("agreement"), "share"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [""] + [
        f"- {s['family']} {s['variant']}: {s['status']} ({s['detail']})"
        for s in rt.get("not_built", [])
    ]
    full = res.get("meta", {}).get("mode", "full") == "full"
    return [*lines, "", _verdict(rows, full)]
