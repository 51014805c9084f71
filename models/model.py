"""The one model class: a fitted encoder + model family that scores and explains raw frames.

:class:`~models.training.TrainedModel` (fresh from training, with how it was obtained) and
:class:`~models.registry.LoadedModel` (verified from the registry, with its name and version)
add data only; every behaviour lives here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import pandas as pd

from models.data import features_from_records
from models.encoding import EncodedBatch, TabularEncoder
from models.family import ModelFamily
from models.spec import FeatureSpec

__all__ = ["Model", "ScoredColumns"]

Columns = Mapping[str, Sequence[Any]]


@dataclass
class ScoredColumns:
    """A scored batch that explains rows on demand, from the one encoding.

    ``explain(rows)`` returns the contributions of those rows (``len(rows)``, n_features) by
    ``method``; ``method_used`` is what ran (None until ``explain`` is called).
    """

    scores: npt.NDArray[np.float64]
    batch: EncodedBatch
    model: ModelFamily
    method: str | None
    method_used: str | None = field(default=None)

    def explain(self, rows: npt.NDArray[np.intp]) -> npt.NDArray[np.float64]:
        """Contributions of ``rows`` (indices into the batch), shape (len(rows), n_features)."""
        index = np.asarray(rows, dtype=np.int64)
        contributions, self.method_used = self.model.explain(self.batch.take(index), self.method)
        return contributions


@dataclass
class Model:
    """Encoder + family: ``score`` (risk per row), ``explain`` (contributions per feature)."""

    family: str
    spec: FeatureSpec
    encoder: TabularEncoder
    model: ModelFamily

    @property
    def feature_names(self) -> list[str]:
        """Raw feature names (columns of :meth:`explain`)."""
        return self.spec.feature_names

    @property
    def device(self) -> str:
        """Device the model computes on."""
        return self.model.device

    def to(self, device: str | None = None) -> Self:
        """Move the model (torch: default cuda if available); returns self."""
        self.model.to(device)
        return self

    def encode(self, df: pd.DataFrame) -> EncodedBatch:
        """Encode a raw frame with the training-time encoder."""
        return self.encoder.transform(df)

    def score(self, df: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Positive-class probability per row of a raw frame."""
        return self.model.predict_proba(self.encoder.transform(df))

    def explain(self, df: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Per-raw-feature contributions (n_rows, n_features), columns = ``feature_names``."""
        return self.model.contributions(self.encoder.transform(df))

    def score_explain(
        self, df: pd.DataFrame
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """``(score(df), explain(df))`` with the frame encoded once, not twice.

        The same arrays (values, dtypes, shapes) as the two separate calls; for callers that
        always want both, such as the decision engine.
        """
        batch = self.encoder.transform(df)
        return self.model.predict_proba(batch), self.model.contributions(batch)

    # ------------------------------------------------------------ columns
    def encode_columns(self, features: Columns, n_rows: int) -> EncodedBatch:
        """Encode per-feature value lists (see :meth:`TabularEncoder.transform_columns`)."""
        return self.encoder.transform_columns(features, n_rows)

    def score_columns(self, features: Columns, n_rows: int) -> npt.NDArray[np.float64]:
        """Positive-class probability per row of per-feature value lists."""
        return self.model.predict_proba(self.encoder.transform_columns(features, n_rows))

    def explain_columns(
        self, features: Columns, n_rows: int, method: str | None = None
    ) -> tuple[npt.NDArray[np.float64], str]:
        """``(contributions (n_rows, n_features), method_used)``: ``method`` if the family has
        it, else its default (see :meth:`ModelFamily.explain`)."""
        return self.model.explain(self.encoder.transform_columns(features, n_rows), method)

    def score_with_explainer(
        self, features: Columns, n_rows: int, method: str | None = None
    ) -> ScoredColumns:
        """Scores now, contributions later for the rows that need them (one encoding)."""
        batch = self.encoder.transform_columns(features, n_rows)
        return ScoredColumns(self.model.predict_proba(batch), batch, self.model, method)

    def score_records(self, records: Sequence[Mapping[str, Any]]) -> npt.NDArray[np.float64]:
        """Score event feature dicts (missing keys -> NaN, handled by the encoder)."""
        return self.score(features_from_records(records, self.spec))
