"""decisionflow models: pure ML (feature specs, encoding, model families, training, metrics,
the one :class:`Model` class, registry files and aliases, promotion gate) and the one map of
where files live (:mod:`models.paths`). Imports nothing else of decisionflow.

Torch is imported lazily: ``import models`` stays cheap; ``get_family("torch_mlp")`` (or
training/loading such a model) pulls it in.
"""

from models.data import (
    DataError,
    data_fingerprint,
    features_from_records,
    holdout_split,
    labels,
    load_frame,
    stratified_kfold,
)
from models.encoding import EncodedBatch, EncoderError, TabularEncoder
from models.family import (
    FAMILY_NAMES,
    ModelFamily,
    UnknownFamilyError,
    UnsafeArtifactError,
    get_family,
)
from models.gate import GateConfig, Verdict, evaluate_gate
from models.metrics import Metrics, ThresholdMetrics, compute_metrics
from models.model import Model
from models.registry import (
    AliasEvent,
    LoadedModel,
    ModelRegistry,
    RegistryError,
    RegistryIntegrityError,
    UnknownModelError,
    VersionInfo,
    default_registry_url,
)
from models.spec import (
    ColumnSpec,
    FeatureSpec,
    SpecError,
    available_specs,
    load_spec,
    spec_from_yaml,
    spec_hash,
)
from models.training import (
    Scorer,
    TrainedModel,
    compare_families,
    comparison_markdown,
    evaluate,
    train_candidates,
    train_family,
    tune_family,
)

__all__ = [
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
]
