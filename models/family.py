"""The model-family interface every model (torch or scikit-learn) implements, and a lookup.

A family instance is bound to a fitted :class:`~models.encoding.TabularEncoder`; it consumes
:class:`~models.encoding.EncodedBatch` objects. All probabilities are for the POSITIVE class.
Contributions are per RAW spec feature, in log-odds units; each family lists the methods it
computes in ``explain_methods`` (its default first; see :mod:`models.explain`).
"""

from __future__ import annotations

import importlib
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from models.encoding import EncodedBatch, TabularEncoder
from models.explain import EXPLAIN_METHODS
from models.spec import ClassWeight

__all__ = [
    "FAMILY_NAMES",
    "ModelFamily",
    "UnknownFamilyError",
    "UnsafeArtifactError",
    "class_weights",
    "get_family",
    "group_sum",
]

_FAMILY_PATHS: dict[str, str] = {
    "torch_mlp": "models.families.torch_mlp:TorchMLP",
    "logreg": "models.families.logreg:LogRegFamily",
    "hgb": "models.families.hgb:HGBFamily",
}
FAMILY_NAMES: tuple[str, ...] = tuple(_FAMILY_PATHS)

PARAMS_FILE = "params.json"


class UnknownFamilyError(KeyError):
    """No model family has this name."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown model family"


class UnsafeArtifactError(RuntimeError):
    """A serialized model holds types outside the family's explicit allow-list."""


def group_sum(
    values: npt.NDArray[np.floating[Any]], groups: npt.NDArray[np.int64], n_groups: int
) -> npt.NDArray[np.float64]:
    """Sum matrix columns into raw-feature groups: (n, d) x groups[d] -> (n, n_groups)."""
    onehot = np.zeros((values.shape[1], n_groups), dtype=np.float64)
    onehot[np.arange(values.shape[1]), groups] = 1.0
    return np.asarray(values, dtype=np.float64) @ onehot


def class_weights(class_weight: ClassWeight, y: npt.NDArray[np.int64]) -> dict[int, float] | None:
    """The weight of each class, ``{0: w0, 1: w1}``, for a spec's ``class_weight`` and labels.

    ``None`` stays None (every row counts once); ``"balanced"`` is scikit-learn's rule,
    ``n / (2 * n_class)``, so the weights average to 1 over ``y`` (a class absent from ``y``
    gets 1.0); an explicit mapping is returned as floats.
    """
    if class_weight is None:
        return None
    if class_weight == "balanced":
        counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=2)[:2]
        return {c: float(len(y) / (2 * n)) if n else 1.0 for c, n in enumerate(counts)}
    return {int(c): float(w) for c, w in dict(class_weight).items()}


class ModelFamily(ABC):
    """A trainable binary classifier over encoded batches.

    Subclasses set ``name``, ``default_params``, ``search_space`` (a small list of parameter
    overrides tried by honest tuning on an inner validation split) and ``explain_methods`` (the
    contribution methods they compute, the default first).
    """

    name: ClassVar[str]
    default_params: ClassVar[dict[str, Any]]
    search_space: ClassVar[list[dict[str, Any]]]
    explain_methods: ClassVar[tuple[str, ...]]

    def __init__(
        self, encoder: TabularEncoder, params: Mapping[str, Any] | None = None, seed: int = 0
    ) -> None:
        unknown = set(params or {}) - set(self.default_params)
        if unknown:
            raise ValueError(
                f"unknown parameter(s) {sorted(unknown)} for family {self.name!r}; "
                f"known: {sorted(self.default_params)}"
            )
        self.encoder = encoder
        self.params: dict[str, Any] = {**self.default_params, **(params or {})}
        self.seed = seed
        self.fit_info: dict[str, Any] = {}

    def class_weights(self, y: npt.NDArray[np.int64]) -> dict[int, float] | None:
        """The class weights of the encoder's spec for training labels ``y`` (None: unweighted).

        Every family weighs its training rows by class with them (see :func:`class_weights`).
        """
        return class_weights(self.encoder.spec.class_weight, y)

    @property
    def device(self) -> str:
        """Where the model computes ("cpu" for scikit-learn families)."""
        return "cpu"

    def to(self, device: str | None = None) -> ModelFamily:
        """Move the model to ``device`` (no-op for CPU-only families); returns self."""
        return self

    @abstractmethod
    def fit(
        self,
        train: EncodedBatch,
        y: npt.NDArray[np.int64],
        valid: EncodedBatch | None = None,
        yv: npt.NDArray[np.int64] | None = None,
        progress: bool = False,
    ) -> ModelFamily:
        """Fit on an encoded training batch; ``valid`` (if any) drives early stopping."""

    @abstractmethod
    def predict_proba(self, batch: EncodedBatch) -> npt.NDArray[np.float64]:
        """Probability of the positive class per row, shape (n_rows,)."""

    def contributions(self, batch: EncodedBatch) -> npt.NDArray[np.float64]:
        """Per-row, per-raw-feature contributions (log-odds) by the family's default method."""
        return self.explain(batch)[0]

    def explain(
        self, batch: EncodedBatch, method: str | None = None
    ) -> tuple[npt.NDArray[np.float64], str]:
        """``(contributions (n_rows, n_features) float64, method_used)``.

        ``method`` (one of :data:`~models.explain.EXPLAIN_METHODS`; None: the default) runs when
        the family supports it, else the family's default does; ``method_used`` names what ran.
        ``"none"`` computes nothing: zeros, ``"none"``.
        """
        if method is not None and method not in EXPLAIN_METHODS:
            raise ValueError(f"unknown explain method {method!r}; known: {list(EXPLAIN_METHODS)}")
        zeros = np.zeros((batch.n_rows, batch.n_features), dtype=np.float64)
        if method == "none":
            return zeros, "none"
        used = method if method in self.explain_methods else self.explain_methods[0]
        if batch.n_rows == 0:
            return zeros, used
        return self._explain(batch, used), used

    @abstractmethod
    def _explain(self, batch: EncodedBatch, method: str) -> npt.NDArray[np.float64]:
        """Contributions by ``method`` (one of ``explain_methods``) of a non-empty batch."""

    @abstractmethod
    def _save_model(self, directory: Path) -> list[str]:
        """Write the fitted model files into ``directory``; return their names."""

    @abstractmethod
    def _load_model(self, directory: Path) -> None:
        """Read the fitted model files written by :meth:`_save_model`."""

    def save(self, directory: str | Path) -> list[str]:
        """Save params + model files (safe formats only) into ``directory``; return names."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        meta = {"family": self.name, "params": self.params, "seed": self.seed}
        meta["fit_info"] = self.fit_info
        (path / PARAMS_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True))
        return [PARAMS_FILE, *self._save_model(path)]

    @classmethod
    def load(cls, directory: str | Path, encoder: TabularEncoder) -> ModelFamily:
        """Load a model saved with :meth:`save` (family taken from its params file)."""
        path = Path(directory)
        meta = json.loads((path / PARAMS_FILE).read_text())
        family_cls = get_family(meta["family"])
        if cls is not ModelFamily and not issubclass(family_cls, cls):
            raise TypeError(f"{path} holds a {meta['family']!r} model, not {cls.name!r}")
        model = family_cls(encoder, meta["params"], int(meta["seed"]))
        model.fit_info = dict(meta.get("fit_info", {}))
        model._load_model(path)
        return model


def get_family(name: str) -> type[ModelFamily]:
    """The family class registered under ``name`` (imported lazily: torch only when asked)."""
    try:
        target = _FAMILY_PATHS[name]
    except KeyError:
        raise UnknownFamilyError(
            f"unknown model family {name!r}; known: {list(FAMILY_NAMES)}"
        ) from None
    module_name, _, attr = target.partition(":")
    family: type[ModelFamily] = getattr(importlib.import_module(module_name), attr)
    return family
