"""The `runtimes` benchmark phase: registered, sized, and its report section (no verdict in
quick mode)."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.bench import Bench
from benchmarks.report import markdown
from benchmarks.run import PHASES, phases_for, sizes_for
from benchmarks.runtimes import runtimes_section

pytestmark = pytest.mark.unit


def _result(mode: str) -> dict[str, Any]:
    sizes = ["1", "32", "500", "2000"]
    rows = [
        {"family": "hgb", "runtime": "native", "status": "reference", "device": "cpu",
         "rows_per_s": dict.fromkeys(sizes, 1000.0), "ratio": dict.fromkeys(sizes, 1.0)},
        {"family": "hgb", "runtime": "onnx", "status": "servable", "device": "cpu",
         "rows_per_s": dict.fromkeys(sizes, 4000.0), "ratio": dict.fromkeys(sizes, 4.0),
         "max_abs_delta": 0.0, "delta_roc_auc": 0.0, "agreement": 1.0},
        {"family": "torch_mlp", "runtime": "int8", "status": "not_servable", "device": "cpu",
         "rows_per_s": dict.fromkeys(sizes, 9000.0), "ratio": dict.fromkeys(sizes, 9.0),
         "max_abs_delta": 0.03, "delta_roc_auc": -0.0001, "agreement": 0.95},
    ]  # fmt: skip
    return {
        "meta": {"mode": mode},
        "runtimes": {
            "batch_sizes": [1, 32, 500, 2000],
            "threads": 1,
            "cutoffs": [0.25, 0.5],
            "holdout_rows": 1114,
            "device": {"device": "cpu", "cuda": "no CUDA device available"},
            "rows": rows,
            "not_built": [
                {"family": "hgb", "variant": "fp16", "status": "not_applicable", "detail": "x"}
            ],
        },
    }


def test_the_phase_is_registered_and_sized() -> None:
    assert "runtimes" in PHASES and callable(Bench.runtimes)
    assert phases_for("runtimes", quick=True) == ["runtimes"]
    for quick in (True, False):
        assert sizes_for(quick)["runtimes_batches"] == [1, 32, 500, 2000]
    assert sizes_for(True)["runtimes_min_s"] < sizes_for(False)["runtimes_min_s"]


def test_the_section_tables_rates_ratios_and_parity_and_judges_only_full_runs() -> None:
    quick = runtimes_section(_result("quick"))
    table = [line for line in quick if line.startswith("| hgb | onnx")]
    assert table == [
        "| hgb | onnx | servable | 4,000 | 4,000 | 4,000 | 4,000 | 4.00x | 4.00x | 4.00x | 4.00x "
        "| 0.0e+00 | +0.0000 | 100.00% |"
    ]
    assert "no verdict" in quick[-1]
    full = runtimes_section(_result("full"))
    # the not-servable int8 is faster, but the verdict names servable runtimes only
    assert full[-1] == "Fastest servable runtime at batch 500 (x native): hgb onnx (4.00x)."
    assert "- hgb fp16: not_applicable (x)" in full
    assert runtimes_section({}) == []
    assert "### Score runtimes" in markdown(_result("quick"))
