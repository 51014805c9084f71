"""Explanation methods (names shared by families and policies) and how to compare them.

Contributions are per raw spec feature, in log-odds, relative to the family's baseline:

* ``integrated_gradients`` (torch_mlp): path integral of the gradient from the baseline;
* ``gradient_x_input`` (torch_mlp): the gradient at the row times ``row - baseline``;
* ``tree_path`` (hgb): Saabas path attribution over the trees;
* ``occlusion`` (hgb): the log-odds lost when a feature is reset to the baseline;
* ``linear`` (logreg): ``coef * standardised value``, exact;
* ``none``: nothing is computed.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = ["EXPLAIN_METHODS", "ExplainMethod", "top_k_agreement", "top_k_sets"]

ExplainMethod = Literal[
    "integrated_gradients", "gradient_x_input", "tree_path", "occlusion", "linear", "none"
]
EXPLAIN_METHODS: tuple[str, ...] = (
    "integrated_gradients",
    "gradient_x_input",
    "tree_path",
    "occlusion",
    "linear",
    "none",
)


def top_k_sets(contributions: npt.NDArray[np.floating], k: int = 3) -> npt.NDArray[np.bool_]:
    """(n, n_features) mask of each row's ``k`` largest positive finite contributions.

    Ties keep feature order, as the policy's reason codes do.
    """
    values = np.asarray(contributions, dtype=np.float64)
    n, m = values.shape
    keyed = np.where(np.isfinite(values) & (values > 0), values, -np.inf)
    order = np.argsort(-keyed, axis=1, kind="stable")[:, : min(k, m)]
    chosen = np.isfinite(np.take_along_axis(keyed, order, axis=1))
    mask = np.zeros((n, m), dtype=bool)
    rows = np.broadcast_to(np.arange(n)[:, None], order.shape)
    mask[rows[chosen], order[chosen]] = True
    return mask


def top_k_agreement(a: npt.NDArray[np.floating], b: npt.NDArray[np.floating], k: int = 3) -> float:
    """Share of rows whose top-``k`` positive-contribution feature sets are equal (NaN: no rows)."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} and {b.shape}")
    if a.shape[0] == 0:
        return float("nan")
    same = (top_k_sets(a, k) == top_k_sets(b, k)).all(axis=1)
    return float(same.mean())
