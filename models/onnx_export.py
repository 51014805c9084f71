"""ONNX exports of fitted model families, for ONNX Runtime on CPU, and int8 quantisation.

Each export computes exactly what the family's ``predict_proba`` computes, from the same
encoded inputs (:mod:`models.runtimes` feeds them):

* ``torch_mlp``: ``torch.onnx.export`` with the TorchScript exporter (``dynamo=False``: works
  offline and needs no ``onnxscript``); inputs ``numeric`` float32 (n, n_numeric) and
  ``categorical`` int64 (n, n_categorical), output ``logit`` (n,); the sigmoid is taken in
  float64 by the runtime, as the native model does.
* ``logreg``: ``skl2onnx`` on the scaler + logistic-regression pipeline; input ``X`` float32
  design matrix ``[numeric | one-hot]``, output ``probabilities`` (n, 2).
* ``hgb``: built by :mod:`models.onnx_trees` (one ``ai.onnx.ml`` ``TreeEnsemble``, float64,
  input ``X`` = ``[numeric | category codes]``, output ``proba`` (n,)). skl2onnx cannot be
  used: it ignores HGB's categorical (bitset) splits and the ordinal re-encoding in front of
  them, and its TreeEnsembleClassifier node fails to build under protobuf 7.

:func:`quantize_int8` applies ONNX Runtime's dynamic int8 quantisation (weights int8,
activations quantised per batch) to the MatMul/Gemm nodes of an exported model.
"""

from __future__ import annotations

import copy
import tempfile
import warnings
from pathlib import Path

from models.family import ModelFamily

__all__ = ["ONNX_FAMILIES", "ExportError", "export_onnx", "quantize_int8"]

ONNX_FAMILIES = ("torch_mlp", "logreg", "hgb")
_TORCH_OPSET = 17


class ExportError(RuntimeError):
    """The family cannot be exported to ONNX (or the exporter failed)."""


def export_onnx(family: ModelFamily) -> tuple[bytes, str]:
    """``(ONNX model bytes, how it was exported)`` of a fitted family."""
    exporters = {"torch_mlp": _torch_mlp, "logreg": _logreg, "hgb": _hgb}
    try:
        exporter = exporters[family.name]
    except KeyError:
        raise ExportError(f"no ONNX export for family {family.name!r}") from None
    return exporter(family)


def _torch_mlp(family: ModelFamily) -> tuple[bytes, str]:
    import torch

    net = getattr(family, "net", None)
    if net is None:
        raise ExportError("torch_mlp model is not fitted")
    net = copy.deepcopy(net).to("cpu").eval()
    enc = family.encoder
    numeric = torch.zeros(2, len(enc.numeric_names), dtype=torch.float32)
    categorical = torch.zeros(2, len(enc.categorical_names), dtype=torch.int64)
    names = ["numeric", "categorical"]
    with tempfile.TemporaryDirectory(prefix="df-onnx-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        path = Path(tmp) / "model.onnx"
        torch.onnx.export(
            net,
            (numeric, categorical),
            path,
            input_names=names,
            output_names=["logit"],
            dynamic_axes={**{n: {0: "rows"} for n in names}, "logit": {0: "rows"}},
            opset_version=_TORCH_OPSET,
            dynamo=False,
        )
        data = path.read_bytes()
    return data, f"torch.onnx.export (TorchScript, opset {_TORCH_OPSET})"


def _logreg(family: ModelFamily) -> tuple[bytes, str]:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    pipeline = getattr(family, "pipeline", None)
    if pipeline is None:
        raise ExportError("logreg model is not fitted")
    enc = family.encoder
    width = len(enc.numeric_names) + int(sum(enc.cardinalities))
    clf = pipeline.named_steps["clf"]
    onx = convert_sklearn(
        pipeline,
        initial_types=[("X", FloatTensorType([None, width]))],
        options={id(clf): {"zipmap": False}},
        target_opset={"": _TORCH_OPSET, "ai.onnx.ml": 3},
    )
    return onx.SerializeToString(), f"skl2onnx (opset {_TORCH_OPSET})"


def _hgb(family: ModelFamily) -> tuple[bytes, str]:
    from models.onnx_trees import hgb_to_onnx

    model = getattr(family, "model", None)
    if model is None:
        raise ExportError("hgb model is not fitted")
    try:
        return hgb_to_onnx(model, family.encoder.cardinalities), "TreeEnsemble builder"
    except ValueError as exc:
        raise ExportError(str(exc)) from None


def quantize_int8(model: bytes) -> bytes:
    """Dynamic int8 quantisation (ONNX Runtime) of the MatMul/Gemm weights of ``model``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="df-int8-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(model)
        quantize_dynamic(
            src, dst, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"]
        )
        return dst.read_bytes()
