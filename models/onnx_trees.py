"""A fitted binary HistGradientBoostingClassifier as one ONNX ``TreeEnsemble`` (ai.onnx.ml 5).

What sklearn does at predict time, and how it maps here:

* with categorical features, an ``OrdinalEncoder`` (``_preprocessor``) first moves the
  categorical columns to the front and replaces each raw category by its position among the
  categories seen in training (unseen: NaN, i.e. missing). The trees' ``feature_idx`` and
  category bitsets refer to that re-encoded input. Here each split is mapped back to the raw
  column, and a categorical split becomes a ``BRANCH_MEMBER`` node over RAW category codes:
  the known categories whose ordinal is in the left bitset, plus, when missing values go
  left, every code of ``[0, cardinality)`` that training never saw;
* a numeric split is ``x <= num_threshold`` -> left (``BRANCH_LEQ``), NaN per
  ``missing_go_to_left``;
* raw score = baseline + the sum of the leaves (shrinkage already applied), probability =
  sigmoid. Everything is float64, so the result matches sklearn to rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["hgb_to_onnx"]

_ML_OPSET = 5
_OPSET = 21
_LEQ, _MEMBER = 0, 6
_NEVER = -1.0  # member of an otherwise empty set: no category code is negative


@dataclass
class _Columns:
    """How sklearn's re-encoded input columns map back to the raw design matrix."""

    raw_index: list[int]  # re-encoded column -> raw column
    categories: dict[int, list[float]]  # re-encoded categorical column -> known raw categories
    cardinality: dict[int, int]  # re-encoded categorical column -> codes the encoder makes

    @classmethod
    def of(cls, model: Any, cardinalities: Sequence[int]) -> _Columns:
        n = int(model.n_features_in_)
        pre = getattr(model, "_preprocessor", None)
        if pre is None:
            return cls(list(range(n)), {}, {})
        mask = np.asarray(model.is_categorical_, dtype=bool)
        raw_index = np.empty(n, dtype=np.int64)
        enc_out, num_out = pre.output_indices_["encoder"], pre.output_indices_["numerical"]
        raw_index[enc_out] = np.flatnonzero(mask)
        raw_index[num_out] = np.flatnonzero(~mask)
        n_numeric = n - len(cardinalities)
        categories, cardinality = {}, {}
        encoder = pre.named_transformers_["encoder"]
        for k, out in enumerate(range(n)[enc_out]):
            known = [float(c) for c in encoder.categories_[k] if not np.isnan(c)]
            categories[out] = known
            cardinality[out] = int(cardinalities[int(raw_index[out]) - n_numeric])
        return cls([int(i) for i in raw_index], categories, cardinality)

    def members(self, column: int, left_ordinals: list[int], missing_left: bool) -> list[float]:
        """Raw category codes that go left at a categorical split on ``column``."""
        known = self.categories[column]
        left = {known[j] for j in left_ordinals if j < len(known)}
        if missing_left:
            left |= {float(c) for c in range(self.cardinality[column])} - set(known)
        return sorted(left) or [_NEVER]


@dataclass
class _Ensemble:
    """The TreeEnsemble node's arrays, filled tree by tree."""

    feat: list[int] = field(default_factory=list)
    split: list[float] = field(default_factory=list)
    mode: list[int] = field(default_factory=list)
    true: list[int] = field(default_factory=list)
    true_leaf: list[int] = field(default_factory=list)
    false: list[int] = field(default_factory=list)
    false_leaf: list[int] = field(default_factory=list)
    missing_true: list[int] = field(default_factory=list)
    members: list[float] = field(default_factory=list)
    leaves: list[float] = field(default_factory=list)
    roots: list[int] = field(default_factory=list)

    def add_tree(self, nodes: np.ndarray, bitsets: np.ndarray, cols: _Columns) -> None:
        interior = [i for i in range(len(nodes)) if not nodes[i]["is_leaf"]]
        where: dict[int, tuple[int, int]] = {}  # sklearn node -> (is leaf, index in its array)
        for j, i in enumerate(interior):
            where[i] = (0, len(self.feat) + j)
        for i in range(len(nodes)):
            if nodes[i]["is_leaf"]:
                where[i] = (1, len(self.leaves))
                self.leaves.append(float(nodes[i]["value"]))
        self.roots.append(len(self.feat))
        for i in interior:
            node = nodes[i]
            column = int(node["feature_idx"])
            missing_left = bool(node["missing_go_to_left"])
            self.feat.append(cols.raw_index[column])
            self.missing_true.append(int(missing_left))
            if node["is_categorical"]:
                left = _bits(bitsets[int(node["bitset_idx"])])
                self.mode.append(_MEMBER)
                self.split.append(0.0)
                self.members += [*cols.members(column, left, missing_left), float("nan")]
            else:
                self.mode.append(_LEQ)
                self.split.append(float(node["num_threshold"]))
            for side, child in (("true", int(node["left"])), ("false", int(node["right"]))):
                is_leaf, index = where[child]
                getattr(self, side).append(index)
                getattr(self, f"{side}_leaf").append(is_leaf)

    def node_attributes(self) -> dict[str, Any]:
        from onnx import TensorProto, helper

        def tensor(name: str, kind: int, values: list[Any]) -> Any:
            return helper.make_tensor(name, kind, [len(values)], values)

        attrs: dict[str, Any] = {
            "aggregate_function": 1,  # SUM
            "post_transform": 0,  # NONE: the sigmoid follows
            "n_targets": 1,
            "tree_roots": self.roots,
            "nodes_featureids": self.feat,
            "nodes_splits": tensor("splits", TensorProto.DOUBLE, self.split),
            "nodes_modes": tensor("modes", TensorProto.UINT8, self.mode),
            "nodes_truenodeids": self.true,
            "nodes_trueleafs": self.true_leaf,
            "nodes_falsenodeids": self.false,
            "nodes_falseleafs": self.false_leaf,
            "nodes_missing_value_tracks_true": self.missing_true,
            "leaf_targetids": [0] * len(self.leaves),
            "leaf_weights": tensor("weights", TensorProto.DOUBLE, self.leaves),
        }
        if self.members:
            attrs["membership_values"] = tensor("members", TensorProto.DOUBLE, self.members)
        return attrs


def _bits(words: np.ndarray) -> list[int]:
    """Positions of the set bits of a bitset stored as uint32 words."""
    w = np.asarray(words, dtype=np.uint32)
    return [32 * i + b for i in range(w.size) for b in range(32) if (int(w[i]) >> b) & 1]


def _stump_constants() -> list[Any]:
    from onnx import TensorProto, helper

    return [
        helper.make_tensor("zero", TensorProto.DOUBLE, [], [0.0]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
    ]


def hgb_to_onnx(model: Any, cardinalities: Sequence[int]) -> bytes:
    """The ONNX model (bytes) of a fitted binary HistGradientBoostingClassifier whose input is
    ``[numeric | category codes]``, codes of categorical column j in ``[0, cardinalities[j])``.

    Input ``X`` float64 (n, n_features); output ``proba`` float64 (n,). ValueError for a
    multi-class model.
    """
    from onnx import TensorProto, checker, helper

    if any(len(trees) != 1 for trees in model._predictors):
        raise ValueError("only binary HistGradientBoostingClassifier models are exported")
    cols = _Columns.of(model, cardinalities)
    base = float(np.ravel(model._baseline_prediction)[0])
    ensemble = _Ensemble()
    for (tree,) in model._predictors:
        if tree.nodes[0]["is_leaf"]:  # a tree without a split adds a constant
            base += float(tree.nodes[0]["value"])
        else:
            ensemble.add_tree(tree.nodes, tree.raw_left_cat_bitsets, cols)
    n_features = int(model.n_features_in_)
    if ensemble.roots:
        first = helper.make_node(
            "TreeEnsemble", ["X"], ["raw"], domain="ai.onnx.ml", **ensemble.node_attributes()
        )
    else:  # no split anywhere: a zero per row, the baseline added below
        first = helper.make_node("ReduceSum", ["zeros", "axes"], ["raw"])
    graph = helper.make_graph(
        [
            *([] if ensemble.roots else [helper.make_node("Mul", ["X", "zero"], ["zeros"])]),
            first,
            helper.make_node("Add", ["raw", "base"], ["logit"]),
            helper.make_node("Sigmoid", ["logit"], ["proba2d"]),
            helper.make_node("Reshape", ["proba2d", "shape"], ["proba"]),
        ],
        "hgb",
        [helper.make_tensor_value_info("X", TensorProto.DOUBLE, [None, n_features])],
        [helper.make_tensor_value_info("proba", TensorProto.DOUBLE, [None])],
        initializer=[
            helper.make_tensor("base", TensorProto.DOUBLE, [], [base]),
            helper.make_tensor("shape", TensorProto.INT64, [1], [-1]),
            *([] if ensemble.roots else _stump_constants()),
        ],
    )
    onx = helper.make_model(
        graph,
        opset_imports=[
            helper.make_opsetid("", _OPSET),
            helper.make_opsetid("ai.onnx.ml", _ML_OPSET),
        ],
        producer_name="decisionflow",
    )
    checker.check_model(onx)
    return bytes(onx.SerializeToString())
