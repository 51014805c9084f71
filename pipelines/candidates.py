"""A trained candidate on disk between pipeline steps: spec, encoder, family files, meta.

No pickle: the family writes its own files (safetensors / skops), like the registry does.
"""

from __future__ import annotations

import json
from pathlib import Path

from models.encoding import TabularEncoder
from models.family import ModelFamily
from models.spec import FeatureSpec, spec_from_yaml
from models.training import TrainedModel

__all__ = ["load_candidate", "save_candidate"]


def save_candidate(trained: TrainedModel, directory: Path) -> None:
    """Write a trained model as spec + encoder + family files + meta (no pickle)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "spec.yaml").write_text(trained.spec.to_yaml(), encoding="utf-8")
    (directory / "encoder.json").write_text(trained.encoder.to_json(), encoding="utf-8")
    trained.model.save(directory / "model")
    meta = json.dumps(
        {
            "family": trained.family,
            "params": trained.params,
            "seed": trained.seed,
            "train_fingerprint": trained.train_fingerprint,
            "n_train": trained.n_train,
            "fit_seconds": trained.fit_seconds,
            "tuning": trained.tuning,
        },
        indent=1,
        sort_keys=True,
        default=str,
    )
    (directory / "meta.json").write_text(meta, encoding="utf-8")


def load_candidate(directory: str | Path, device: str | None = None) -> TrainedModel:
    """Read a model written by :func:`save_candidate`."""
    path = Path(directory)
    spec: FeatureSpec = spec_from_yaml((path / "spec.yaml").read_text(encoding="utf-8"))
    encoder = TabularEncoder.from_json((path / "encoder.json").read_text(encoding="utf-8"), spec)
    model = ModelFamily.load(path / "model", encoder)
    if device is not None:
        model.to(device)
    meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    return TrainedModel(
        family=meta["family"],
        spec=spec,
        encoder=encoder,
        model=model,
        params=dict(meta["params"]),
        seed=int(meta["seed"]),
        train_fingerprint=meta["train_fingerprint"],
        n_train=int(meta["n_train"]),
        fit_seconds=float(meta.get("fit_seconds", 0.0)),
        tuning=list(meta.get("tuning", [])),
    )
