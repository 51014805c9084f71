"""Pin the public names of the models package (what workers and DAGs may import)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import models

EXPECTED = {
    "FAMILY_NAMES",
    "AliasEvent",
    "ColumnSpec",
    "DataError",
    "EncodedBatch",
    "EncoderError",
    "FeatureSpec",
    "GateConfig",
    "LoadedModel",
    "Metrics",
    "Model",
    "ModelFamily",
    "ModelRegistry",
    "RegistryError",
    "RegistryIntegrityError",
    "Scorer",
    "SpecError",
    "TabularEncoder",
    "ThresholdMetrics",
    "TrainedModel",
    "UnknownFamilyError",
    "UnknownModelError",
    "UnsafeArtifactError",
    "Verdict",
    "VersionInfo",
    "available_specs",
    "compare_families",
    "comparison_markdown",
    "compute_metrics",
    "data_fingerprint",
    "default_registry_url",
    "evaluate",
    "evaluate_gate",
    "features_from_records",
    "get_family",
    "holdout_split",
    "labels",
    "load_frame",
    "load_spec",
    "spec_from_yaml",
    "spec_hash",
    "stratified_kfold",
    "train_candidates",
    "train_family",
    "tune_family",
}


def test_public_names_are_pinned() -> None:
    assert set(models.__all__) == EXPECTED
    for name in models.__all__:
        assert getattr(models, name) is not None


def test_import_is_light_and_imports_nothing_of_ours() -> None:
    code = (
        "import sys, models; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'decisioning', 'workers')]; "
        "print(bad)"
    )
    root = Path(models.__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    assert out.stdout.strip() == "[]"
