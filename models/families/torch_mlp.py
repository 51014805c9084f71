"""``torch_mlp``: categorical embeddings + standardised numeric inputs -> MLP -> one logit.

Training: AdamW on binary cross-entropy, mini-batches shuffled by a seeded generator, early
stopping on validation loss (best weights restored), deterministic algorithms switched on for
the duration of ``fit``. With the spec's ``class_weight`` each row's loss is multiplied by its
class's weight, in training and in the validation loss early stopping watches alike. Runs on
cuda when available unless a device is given.

Contributions, in log-odds space from the baseline "average applicant" (standardised numeric = 0,
each category at its training mode), attributions on the dense input ``[numeric | embeddings]``
summed per raw feature (embedding dimensions go to their column):

* ``integrated_gradients`` (default): per row they add up to ``logit(x) - logit(baseline)`` up to
  the Riemann-sum error of ``ig_steps`` steps; ``ig_steps`` forwards and backwards per row;
* ``gradient_x_input``: the logit's gradient at x times ``x - baseline``; one forward and
  backward per row (~8x cheaper on one CPU thread), a first-order approximation of the above.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from models.encoding import EncodedBatch, TabularEncoder
from models.family import ModelFamily, group_sum

__all__ = ["MLPNet", "TorchMLP", "default_device"]

_WEIGHTS_FILE = "model.pt"
_PREDICT_CHUNK = 65536


def default_device() -> str:
    """ "cuda" when a CUDA device is visible to torch, else "cpu"."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def _embedding_dim(cardinality: int, cap: int) -> int:
    scaled = 1.6 * math.pow(cardinality, 0.56)
    return max(2, min(cap, math.ceil(scaled)))


class MLPNet(nn.Module):
    """Embeddings for categorical columns, concatenated with numeric inputs, then an MLP."""

    def __init__(
        self,
        n_numeric: int,
        cardinalities: list[int],
        hidden: int,
        depth: int,
        dropout: float,
        embedding_cap: int,
    ) -> None:
        super().__init__()
        self.embeddings = nn.ModuleList(
            nn.Embedding(card, _embedding_dim(card, embedding_cap)) for card in cardinalities
        )
        self.embedding_dims = [_embedding_dim(card, embedding_cap) for card in cardinalities]
        width = n_numeric + sum(self.embedding_dims)
        layers: list[nn.Module] = []
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU(), nn.Dropout(dropout)]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.head = nn.Sequential(*layers)

    def dense_input(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        """``[numeric | embeddings]`` — the continuous input the MLP head sees."""
        parts = [numeric] + [emb(categorical[:, i]) for i, emb in enumerate(self.embeddings)]
        return torch.cat(parts, dim=1)

    def forward_dense(self, dense: torch.Tensor) -> torch.Tensor:
        """Logits from a dense input (used by integrated gradients)."""
        out: torch.Tensor = self.head(dense).squeeze(-1)
        return out

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        """Logits, shape (n,)."""
        return self.forward_dense(self.dense_input(numeric, categorical))


@contextlib.contextmanager
def _deterministic() -> Iterator[None]:
    """Deterministic torch kernels for the block; the previous setting is restored."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    previous = torch.are_deterministic_algorithms_enabled()
    previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=previous_warn)


class TorchMLP(ModelFamily):
    """PyTorch MLP with categorical embeddings (see module docstring)."""

    name: ClassVar[str] = "torch_mlp"
    explain_methods: ClassVar[tuple[str, ...]] = ("integrated_gradients", "gradient_x_input")
    default_params: ClassVar[dict[str, Any]] = {
        "hidden": 64,
        "depth": 2,
        "dropout": 0.3,
        "embedding_cap": 8,
        "lr": 1e-3,
        "weight_decay": 0.05,
        "batch_size": 256,
        "max_epochs": 300,
        "patience": 15,
        "epochs": None,  # fixed epoch count when no validation set is given
        "ig_steps": 16,
    }
    search_space: ClassVar[list[dict[str, Any]]] = [
        {"hidden": 32, "depth": 1, "dropout": 0.1},
        {"hidden": 64, "depth": 2, "dropout": 0.1},
        {"hidden": 64, "depth": 2, "dropout": 0.3},
        {"hidden": 128, "depth": 2, "dropout": 0.5},
        {"hidden": 128, "depth": 3, "dropout": 0.3},
    ]

    def __init__(
        self,
        encoder: TabularEncoder,
        params: dict[str, Any] | None = None,
        seed: int = 0,
        device: str | None = None,
    ) -> None:
        super().__init__(encoder, params, seed)
        self._device = torch.device(device or default_device())
        self.net: MLPNet | None = None

    # --------------------------------------------------------------- plumbing
    @property
    def device(self) -> str:
        """The torch device the model lives on, as a string."""
        return str(self._device)

    def to(self, device: str | None = None) -> TorchMLP:
        """Move to ``device`` (default: cuda if available, else cpu); returns self."""
        self._device = torch.device(device or default_device())
        if self.net is not None:
            self.net.to(self._device)
        return self

    def _build(self) -> MLPNet:
        n_numeric = len(self.encoder.numeric_names)
        return MLPNet(
            n_numeric,
            self.encoder.cardinalities,
            int(self.params["hidden"]),
            int(self.params["depth"]),
            float(self.params["dropout"]),
            int(self.params["embedding_cap"]),
        )

    def _fitted(self) -> MLPNet:
        if self.net is None:
            raise RuntimeError("torch_mlp model is not fitted")
        return self.net

    def _tensors(self, batch: EncodedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        num = torch.from_numpy(np.ascontiguousarray(batch.numeric)).to(self._device)
        cat = torch.from_numpy(np.ascontiguousarray(batch.categorical)).to(self._device)
        return num, cat

    # ---------------------------------------------------------------- training
    def fit(
        self,
        train: EncodedBatch,
        y: npt.NDArray[np.int64],
        valid: EncodedBatch | None = None,
        yv: npt.NDArray[np.int64] | None = None,
        progress: bool = False,
    ) -> TorchMLP:
        """Train with AdamW; early stopping on ``valid`` loss when given, else fixed epochs."""
        with _deterministic():
            torch.manual_seed(self.seed)
            net = self._build().to(self._device)
            self.net = net
            gen = torch.Generator().manual_seed(self.seed)
            opt = torch.optim.AdamW(
                net.parameters(),
                lr=float(self.params["lr"]),
                weight_decay=float(self.params["weight_decay"]),
            )
            loss_fn = nn.functional.binary_cross_entropy_with_logits
            weights = self.class_weights(y)
            num, cat = self._tensors(train)
            target = torch.from_numpy(y.astype(np.float32)).to(self._device)
            row_w = self._row_weights(weights, y)
            has_valid = valid is not None and yv is not None
            if has_valid:
                assert valid is not None and yv is not None
                v_num, v_cat = self._tensors(valid)
                v_target = torch.from_numpy(yv.astype(np.float32)).to(self._device)
                v_w = self._row_weights(weights, yv)
            fixed = self.params["epochs"]
            max_epochs = (
                int(self.params["max_epochs"]) if has_valid or fixed is None else int(fixed)
            )
            patience = int(self.params["patience"])
            batch_size = int(self.params["batch_size"])
            best_loss, best_epoch, best_state = math.inf, 0, copy.deepcopy(net.state_dict())
            history: list[float] = []
            bar = _progress(max_epochs, progress, f"{self.name} ({self.device})")
            n = num.shape[0]
            for epoch in range(1, max_epochs + 1):
                net.train()
                order = torch.randperm(n, generator=gen).to(self._device)
                for start in range(0, n, batch_size):
                    idx = order[start : start + batch_size]
                    opt.zero_grad(set_to_none=True)
                    w = None if row_w is None else row_w[idx]
                    loss = loss_fn(net(num[idx], cat[idx]), target[idx], weight=w)
                    torch.autograd.backward(loss)
                    opt.step()
                if bar is not None:
                    bar.update(1)
                if not has_valid:
                    continue
                net.eval()
                with torch.no_grad():
                    v_loss = float(loss_fn(net(v_num, v_cat), v_target, weight=v_w))
                history.append(v_loss)
                if bar is not None:
                    bar.set_postfix(val_loss=f"{v_loss:.4f}")
                if v_loss < best_loss - 1e-5:
                    best_loss, best_epoch = v_loss, epoch
                    best_state = copy.deepcopy(net.state_dict())
                elif epoch - best_epoch >= patience:
                    break
            if bar is not None:
                bar.close()
            if has_valid:
                net.load_state_dict(best_state)
                self.fit_info = {"best_epoch": best_epoch, "best_val_loss": best_loss}
                self.fit_info["epochs_run"] = len(history)
            else:
                self.fit_info = {"best_epoch": max_epochs, "epochs_run": max_epochs}
            if weights is not None:
                self.fit_info["class_weight"] = weights
            net.eval()
        return self

    def _row_weights(
        self, weights: dict[int, float] | None, y: npt.NDArray[np.int64]
    ) -> torch.Tensor | None:
        """Each row's loss weight (its class's weight), on the model device; None: unweighted."""
        if weights is None:
            return None
        per_class = np.array([weights[0], weights[1]], dtype=np.float32)
        return torch.from_numpy(per_class[np.asarray(y, dtype=np.int64)]).to(self._device)

    # --------------------------------------------------------------- inference
    def _logits(self, batch: EncodedBatch) -> torch.Tensor:
        net = self._fitted()
        net.eval()
        num, cat = self._tensors(batch)
        with torch.no_grad():
            chunks = [
                net(num[s : s + _PREDICT_CHUNK], cat[s : s + _PREDICT_CHUNK])
                for s in range(0, max(num.shape[0], 1), _PREDICT_CHUNK)
            ]
        return torch.cat(chunks) if chunks else torch.zeros(0, device=self._device)

    def predict_proba(self, batch: EncodedBatch) -> npt.NDArray[np.float64]:
        """Positive-class probability per row (float64 numpy, computed on the model device)."""
        if batch.n_rows == 0:
            return np.zeros(0, dtype=np.float64)
        proba = torch.sigmoid(self._logits(batch).double())
        return np.asarray(proba.cpu().numpy(), dtype=np.float64)

    def _explain(self, batch: EncodedBatch, method: str) -> npt.NDArray[np.float64]:
        """Integrated gradients or gradient x input (log-odds) summed per raw feature."""
        net = self._fitted()
        net.eval()
        num, cat = self._tensors(batch)
        with torch.no_grad():
            dense = net.dense_input(num, cat)
            base_cat = torch.from_numpy(self.encoder.baseline_categories).to(self._device)
            base_num = torch.zeros(1, num.shape[1], device=self._device)
            baseline = net.dense_input(base_num, base_cat[None, :])
        groups = np.concatenate(
            [
                batch.numeric_groups,
                np.repeat(batch.categorical_groups, net.embedding_dims).astype(np.int64),
            ]
        )
        if method == "integrated_gradients":
            attr = self._integrated_gradients(net, dense, baseline)
        else:
            attr = self._gradient_x_input(net, dense, baseline)
        return group_sum(attr.double().cpu().numpy(), groups, batch.n_features)

    def _integrated_gradients(
        self, net: MLPNet, dense: torch.Tensor, baseline: torch.Tensor
    ) -> torch.Tensor:
        """Riemann-sum (midpoint) IG over ``ig_steps`` steps per row, on the dense input."""
        steps = int(self.params["ig_steps"])
        alphas = (torch.arange(steps, device=self._device, dtype=dense.dtype) + 0.5) / steps
        rows_per_chunk = max(1, 262144 // steps)
        attributions = []
        for s in range(0, dense.shape[0], rows_per_chunk):
            x = dense[s : s + rows_per_chunk]
            delta = x - baseline
            path = baseline[None] + alphas[:, None, None] * delta[None]
            path = path.reshape(-1, x.shape[1]).requires_grad_(True)
            out = net.forward_dense(path).sum()
            (grad,) = torch.autograd.grad(out, path)
            avg_grad = grad.reshape(steps, x.shape[0], x.shape[1]).mean(dim=0)
            attributions.append((delta * avg_grad).detach())
        return torch.cat(attributions)

    def _gradient_x_input(
        self, net: MLPNet, dense: torch.Tensor, baseline: torch.Tensor
    ) -> torch.Tensor:
        """``d logit / d dense (x) * (x - baseline)``: one forward and backward per row."""
        attributions = []
        for s in range(0, dense.shape[0], _PREDICT_CHUNK):
            x = dense[s : s + _PREDICT_CHUNK].clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(net.forward_dense(x).sum(), x)
            attributions.append(((x.detach() - baseline) * grad).detach())
        return torch.cat(attributions)

    # ------------------------------------------------------------- persistence
    def _save_model(self, directory: Path) -> list[str]:
        state = {k: v.detach().cpu() for k, v in self._fitted().state_dict().items()}
        torch.save(state, directory / _WEIGHTS_FILE)
        return [_WEIGHTS_FILE]

    def _load_model(self, directory: Path) -> None:
        state = torch.load(directory / _WEIGHTS_FILE, map_location="cpu", weights_only=True)
        net = self._build()
        net.load_state_dict(state)
        net.eval()
        self.net = net.to(self._device)


def _progress(total: int, enabled: bool, desc: str) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="epoch", leave=False)
