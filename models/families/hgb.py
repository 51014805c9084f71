"""``hgb``: scikit-learn HistGradientBoostingClassifier on ``[numeric | category codes]``.

Categorical columns use HGB's native categorical support (the encoder's vocabulary indices).
Contributions (log-odds, per raw feature):

* ``tree_path`` (default): Saabas path attribution over the fitted trees
  (:mod:`models.families.tree_paths`); with :meth:`HGBFamily.expected_logit` they add up to the
  model's log-odds exactly (up to rounding);
* ``occlusion``: ``decision(x) - decision(x with f's columns set to the training baseline)``,
  where the baseline is 0 for standardised numeric columns (the training mean) and the training
  mode for categories; one forward over the whole batch per feature.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import HistGradientBoostingClassifier

from models.encoding import EncodedBatch
from models.families.skops_io import dump_estimator, load_estimator
from models.families.tree_paths import TreePaths
from models.family import ModelFamily

__all__ = ["HGBFamily"]

_MODEL_FILE = "model.skops"
# Types skops does not trust by default but a fitted HGB classifier contains (checked with
# ``skops.io.get_untrusted_types`` on a dump; the partial wraps ``check_array``).
_ALLOWED_TYPES: tuple[str, ...] = (
    "functools.partial",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
)


class HGBFamily(ModelFamily):
    """Histogram gradient boosting with internal early stopping (seeded)."""

    name: ClassVar[str] = "hgb"
    default_params: ClassVar[dict[str, Any]] = {
        "learning_rate": 0.05,
        "max_leaf_nodes": 15,
        "min_samples_leaf": 20,
        "l2_regularization": 0.0,
        "max_iter": 500,
        "max_features": 1.0,
    }
    search_space: ClassVar[list[dict[str, Any]]] = [
        {"learning_rate": 0.05, "max_leaf_nodes": leaves, "min_samples_leaf": leaf}
        for leaves in (7, 15, 31)
        for leaf in (20, 50)
    ]

    explain_methods: ClassVar[tuple[str, ...]] = ("tree_path", "occlusion")

    model: HistGradientBoostingClassifier | None = None
    _paths: TreePaths | None = None

    def _design(self, batch: EncodedBatch) -> npt.NDArray[np.float64]:
        return np.hstack([batch.numeric, batch.categorical]).astype(np.float64)

    def _fitted(self) -> HistGradientBoostingClassifier:
        if self.model is None:
            raise RuntimeError("hgb model is not fitted")
        return self.model

    def fit(
        self,
        train: EncodedBatch,
        y: npt.NDArray[np.int64],
        valid: EncodedBatch | None = None,
        yv: npt.NDArray[np.int64] | None = None,
        progress: bool = False,
    ) -> HGBFamily:
        """Fit with early stopping on an internal seeded 10% split of ``train``.

        Rows are weighed by class with the spec's ``class_weight`` (the internal validation
        split too, so early stopping watches the same weighted loss).
        """
        weights = self.class_weights(y)
        n_num = train.numeric.shape[1]
        mask = [False] * n_num + [True] * train.categorical.shape[1]
        self.model = HistGradientBoostingClassifier(
            learning_rate=float(self.params["learning_rate"]),
            max_leaf_nodes=int(self.params["max_leaf_nodes"]),
            min_samples_leaf=int(self.params["min_samples_leaf"]),
            l2_regularization=float(self.params["l2_regularization"]),
            max_iter=int(self.params["max_iter"]),
            max_features=float(self.params["max_features"]),
            categorical_features=mask,
            early_stopping=True,
            validation_fraction=0.1,
            n_iter_no_change=20,
            random_state=self.seed,
            class_weight=weights,
        )
        self.model.fit(self._design(train), y)
        self._paths = None
        self.fit_info = {"n_iter": int(self.model.n_iter_)}
        if weights is not None:
            self.fit_info["class_weight"] = weights
        return self

    def _logit(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.asarray(self._fitted().decision_function(x), dtype=np.float64)

    def predict_proba(self, batch: EncodedBatch) -> npt.NDArray[np.float64]:
        """Positive-class probability per row."""
        proba = self._fitted().predict_proba(self._design(batch))[:, 1]
        return np.asarray(proba, dtype=np.float64)

    def _tree_paths(self) -> TreePaths:
        if self._paths is None:
            enc = self.encoder
            groups = np.concatenate([enc.numeric_groups, enc.categorical_groups])
            self._paths = TreePaths.from_model(self._fitted(), groups, len(enc.spec.columns))
        return self._paths

    def expected_logit(self) -> float:
        """The log-odds ``tree_path`` contributions start from (the trees' expected value)."""
        return self._tree_paths().expected_value

    def _explain(self, batch: EncodedBatch, method: str) -> npt.NDArray[np.float64]:
        if method == "tree_path":
            return self._tree_paths().contributions(self._design(batch))
        return self._occlusion(batch)

    def _occlusion(self, batch: EncodedBatch) -> npt.NDArray[np.float64]:
        """Baseline-replacement occlusion per raw feature (log-odds), one forward per feature."""
        x = self._design(batch)
        base_score = self._logit(x)
        n_num = batch.numeric.shape[1]
        baseline = np.concatenate(
            [np.zeros(n_num), self.encoder.baseline_categories.astype(np.float64)]
        )
        groups = np.concatenate([batch.numeric_groups, batch.categorical_groups])
        out = np.zeros((batch.n_rows, batch.n_features), dtype=np.float64)
        for f in range(batch.n_features):
            cols = np.flatnonzero(groups == f)
            if cols.size == 0:
                continue
            occluded = x.copy()
            occluded[:, cols] = baseline[cols]
            out[:, f] = base_score - self._logit(occluded)
        return out

    def _save_model(self, directory: Path) -> list[str]:
        dump_estimator(self._fitted(), directory / _MODEL_FILE)
        return [_MODEL_FILE]

    def _load_model(self, directory: Path) -> None:
        model = load_estimator(directory / _MODEL_FILE, _ALLOWED_TYPES)
        if not isinstance(model, HistGradientBoostingClassifier):
            raise TypeError(f"{_MODEL_FILE} does not hold a HistGradientBoostingClassifier")
        self.model = model
        self._paths = None
