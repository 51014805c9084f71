"""``logreg``: scikit-learn LogisticRegression on ``[standardised numeric | one-hot]``.

Contributions (method ``linear``, whatever is asked): ``coef_j * z_j`` summed per raw feature,
where ``z`` is the design matrix after the pipeline's StandardScaler (so 0 is the training
average): the log-odds each feature adds relative to an average applicant, exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from models.encoding import EncodedBatch
from models.families.skops_io import dump_estimator, load_estimator
from models.family import ModelFamily, group_sum

__all__ = ["LogRegFamily"]

_MODEL_FILE = "model.skops"
# Types skops does not trust by default but this family may legitimately contain.
_ALLOWED_TYPES: tuple[str, ...] = ()


class LogRegFamily(ModelFamily):
    """L2-regularised logistic regression (lbfgs), deterministic."""

    name: ClassVar[str] = "logreg"
    default_params: ClassVar[dict[str, Any]] = {"C": 0.3, "max_iter": 2000}
    search_space: ClassVar[list[dict[str, Any]]] = [
        {"C": c} for c in (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
    ]

    explain_methods: ClassVar[tuple[str, ...]] = ("linear",)

    pipeline: Pipeline | None = None

    def _design(self, batch: EncodedBatch) -> npt.NDArray[np.float32]:
        return self.encoder.design_matrix(batch)[0]

    def _fitted(self) -> Pipeline:
        if self.pipeline is None:
            raise RuntimeError("logreg model is not fitted")
        return self.pipeline

    def fit(
        self,
        train: EncodedBatch,
        y: npt.NDArray[np.int64],
        valid: EncodedBatch | None = None,
        yv: npt.NDArray[np.int64] | None = None,
        progress: bool = False,
    ) -> LogRegFamily:
        """Fit the scaler + logistic regression (``valid`` is unused: no early stopping).

        Rows are weighed by class with the spec's ``class_weight`` (none: each counts once).
        """
        weights = self.class_weights(y)
        clf = LogisticRegression(
            C=float(self.params["C"]),
            max_iter=int(self.params["max_iter"]),
            solver="lbfgs",
            class_weight=weights,
        )
        self.pipeline = Pipeline([("scale", StandardScaler()), ("clf", clf)])
        self.pipeline.fit(self._design(train), y)
        self.fit_info = {"n_iter": int(np.max(clf.n_iter_))}
        if weights is not None:
            self.fit_info["class_weight"] = weights
        return self

    def predict_proba(self, batch: EncodedBatch) -> npt.NDArray[np.float64]:
        """Positive-class probability per row."""
        proba = self._fitted().predict_proba(self._design(batch))[:, 1]
        return np.asarray(proba, dtype=np.float64)

    def _explain(self, batch: EncodedBatch, method: str) -> npt.NDArray[np.float64]:
        """``coef * standardised value`` summed per raw feature (log-odds): exact, ``linear``."""
        pipe = self._fitted()
        z = pipe.named_steps["scale"].transform(self._design(batch))
        coef = pipe.named_steps["clf"].coef_[0]
        _, groups = self.encoder.design_matrix(batch.take(slice(0, 0)))
        return group_sum(z * coef[None, :], groups, batch.n_features)

    def _save_model(self, directory: Path) -> list[str]:
        dump_estimator(self._fitted(), directory / _MODEL_FILE)
        return [_MODEL_FILE]

    def _load_model(self, directory: Path) -> None:
        model = load_estimator(directory / _MODEL_FILE, _ALLOWED_TYPES)
        if not isinstance(model, Pipeline):
            raise TypeError(f"{_MODEL_FILE} does not hold a Pipeline")
        self.pipeline = model
