"""Saabas path attributions for a fitted HistGradientBoostingClassifier, vectorised in numpy.

Every tree's nodes get an expected value: a leaf's value, or the training-count-weighted mean of
its children's. Walking from the root to a leaf, each split moves the expectation by
``E[child] - E[node]``; that move is credited to the split's feature. So, per row and exactly up
to rounding, ``expected_value + contributions.sum() == decision_function`` (log-odds), where
``expected_value`` is the model's baseline plus every tree's root expectation.

All trees are flattened into one node table; a batch walks all of them at once, one numpy step
per tree level for the (row, tree) pairs not at a leaf yet, with the rules of scikit-learn's
raw-data predictor (NaN and unknown or negative categories follow ``missing_go_to_left``). Each
node stores the summed attribution of its root path, so a row's contributions are the sum of
its leaves' rows. Inputs first get the model's own preprocessing: categorical columns first, as
ordinal codes of the training categories (unknown: NaN), then the numeric columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import HistGradientBoostingClassifier

__all__ = ["TreePaths"]

IntArray = npt.NDArray[np.intp]
FloatArray = npt.NDArray[np.float64]


def _expected_values(
    value: FloatArray, count: FloatArray, left: IntArray, right: IntArray, internal: IntArray
) -> FloatArray:
    """Count-weighted mean leaf value below each node (nodes are in pre-order: children after)."""
    expected = value.copy()
    for i in internal[::-1]:  # children before parents
        cl, cr = count[left[i]], count[right[i]]
        total = cl + cr
        el, er = expected[left[i]], expected[right[i]]
        expected[i] = (cl * el + cr * er) / total if total > 0 else 0.5 * (el + er)
    return expected


def _preprocessing(
    model: HistGradientBoostingClassifier, n_columns: int
) -> tuple[IntArray, list[tuple[int, FloatArray]]]:
    """Input column of each tree feature, and (tree feature, sorted categories) pairs."""
    is_cat = getattr(model, "is_categorical_", None)
    if is_cat is None or model._preprocessor is None:
        return np.arange(n_columns, dtype=np.intp), []
    is_cat = np.asarray(is_cat, dtype=bool)
    columns = np.concatenate([np.flatnonzero(is_cat), np.flatnonzero(~is_cat)]).astype(np.intp)
    encoder = model._preprocessor.named_transformers_["encoder"]
    categories = [
        (j, np.asarray(cats, dtype=np.float64)[~np.isnan(np.asarray(cats, dtype=np.float64))])
        for j, cats in enumerate(encoder.categories_)
    ]
    return columns, categories


@dataclass(frozen=True)
class TreePaths:
    """The flattened trees of one fitted model (see the module docstring)."""

    columns: IntArray
    """Input column of each tree feature (the model's preprocessing puts categories first)."""
    categories: list[tuple[int, FloatArray]]
    """(tree feature, sorted training categories): those features hold ordinal codes."""
    feature: IntArray
    threshold: FloatArray
    missing_right: npt.NDArray[np.bool_]
    children: IntArray
    """(n_nodes * 2,): ``children[2 * node + go_right]``; a leaf points at itself."""
    categorical: npt.NDArray[np.bool_]
    left_bitset: IntArray
    """Row of ``left_bitsets`` of a categorical node's split."""
    known_bitset: IntArray
    """Row of ``known_bitsets`` of a categorical node's feature."""
    left_bitsets: npt.NDArray[np.uint32]
    known_bitsets: npt.NDArray[np.uint32]
    roots: IntArray
    leaf: npt.NDArray[np.bool_]
    path_contributions: FloatArray
    """(n_nodes, n_groups): summed attributions from the tree's root to the node."""
    expected_value: float
    """Baseline log-odds plus every tree's root expectation."""

    @classmethod
    def from_model(
        cls, model: HistGradientBoostingClassifier, groups: npt.NDArray[np.int64], n_groups: int
    ) -> TreePaths:
        """Flatten ``model``'s trees; ``groups[j]`` is the output column of design column j."""
        if model.n_trees_per_iteration_ != 1:
            raise ValueError("tree paths need a binary classifier (one tree per iteration)")
        predictors = [p for per_iter in model._predictors for p in per_iter]
        sizes = np.array([len(p.nodes) for p in predictors], dtype=np.intp)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
        nodes = np.concatenate([p.nodes for p in predictors])
        bit_sizes = [len(p.raw_left_cat_bitsets) for p in predictors]
        bit_offsets = np.repeat(np.concatenate([[0], np.cumsum(bit_sizes)[:-1]]), sizes)
        left_bitsets = np.concatenate(
            [p.raw_left_cat_bitsets for p in predictors] + [np.zeros((1, 8), np.uint32)]
        )
        known_bitsets, f_idx_map = model._bin_mapper.make_known_categories_bitsets()
        columns, categories = _preprocessing(model, len(groups))
        groups = np.asarray(groups)[columns]

        node_offset = np.repeat(offsets, sizes)
        own = np.arange(len(nodes), dtype=np.intp)
        leaf = nodes["is_leaf"].astype(bool)
        left = np.where(leaf, own, nodes["left"].astype(np.intp) + node_offset)
        right = np.where(leaf, own, nodes["right"].astype(np.intp) + node_offset)
        feature = np.where(leaf, 0, nodes["feature_idx"]).astype(np.intp)
        internal = np.flatnonzero(~leaf)

        expected = _expected_values(
            nodes["value"].astype(np.float64), nodes["count"].astype(np.float64), left, right,
            internal,
        )  # fmt: skip
        contrib = np.zeros((len(nodes), n_groups), dtype=np.float64)
        for i in internal:  # parents before children (pre-order)
            g = groups[feature[i]]
            for child in (left[i], right[i]):
                contrib[child] = contrib[i]
                contrib[child, g] += expected[child] - expected[i]
        return cls(
            columns=columns,
            categories=categories,
            feature=feature,
            threshold=np.where(leaf, np.inf, nodes["num_threshold"]).astype(np.float64),
            missing_right=~nodes["missing_go_to_left"].astype(bool),
            children=np.column_stack([left, right]).ravel(),
            categorical=nodes["is_categorical"].astype(bool) & ~leaf,
            left_bitset=(nodes["bitset_idx"].astype(np.intp) + bit_offsets).astype(np.intp),
            known_bitset=np.asarray(f_idx_map, dtype=np.intp)[feature],
            left_bitsets=left_bitsets,
            known_bitsets=np.asarray(known_bitsets, dtype=np.uint32),
            roots=offsets,
            leaf=leaf,
            path_contributions=contrib,
            expected_value=float(model._baseline_prediction.ravel()[0] + expected[offsets].sum()),
        )

    def tree_input(self, x: FloatArray) -> FloatArray:
        """The model's preprocessing of design rows: columns reordered, categories as codes."""
        out = np.array(np.asarray(x, dtype=np.float64)[:, self.columns], order="C")
        for j, cats in self.categories:
            values = out[:, j]
            pos = np.minimum(np.searchsorted(cats, values), max(len(cats) - 1, 0))
            known = (cats[pos] == values) if len(cats) else np.zeros(len(values), dtype=bool)
            out[:, j] = np.where(known, pos, np.nan)
        return out

    def leaves(self, x: FloatArray) -> IntArray:
        """Leaf node of every (row, tree) of design rows ``x``: shape (n_rows, n_trees)."""
        tree_x = self.tree_input(x)
        n, d = tree_x.shape
        node = np.tile(self.roots, n)
        row_start = np.repeat(np.arange(n, dtype=np.intp) * d, len(self.roots))
        flat = tree_x.ravel()
        active = np.flatnonzero(~self.leaf[node])  # (row, tree) pairs not at a leaf yet
        while active.size:
            at = node[active]
            value = flat[row_start[active] + self.feature[at]]
            with np.errstate(invalid="ignore"):
                right = ~(value <= self.threshold[at])
            nan = np.isnan(value)
            right[nan] = self.missing_right[at[nan]]
            cat = np.flatnonzero(self.categorical[at] & ~nan)
            if cat.size:
                right[cat] = self._categorical_right(at[cat], value[cat])
            at = self.children[2 * at + right]
            node[active] = at
            active = active[~self.leaf[at]]
        return node.reshape(n, len(self.roots))

    def _categorical_right(self, node: IntArray, value: FloatArray) -> npt.NDArray[np.bool_]:
        negative = value < 0
        code = np.where(negative, 0, value).astype(np.uint8).astype(np.intp)
        word, bit = code >> 5, (code & 31).astype(np.uint32)
        in_left = (self.left_bitsets[self.left_bitset[node], word] >> bit) & 1
        known = (self.known_bitsets[self.known_bitset[node], word] >> bit) & 1
        missing = negative | ((in_left == 0) & (known == 0))
        return np.where(missing, self.missing_right[node], in_left == 0)

    def contributions(self, x: FloatArray) -> FloatArray:
        """Per-row, per-group Saabas contributions (log-odds), shape (n_rows, n_groups)."""
        leaves = self.leaves(x)
        out = np.zeros((x.shape[0], self.path_contributions.shape[1]), dtype=np.float64)
        for t in range(leaves.shape[1]):
            out += self.path_contributions[leaves[:, t]]
        return out
