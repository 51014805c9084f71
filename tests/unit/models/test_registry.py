"""Registry: round trip, integrity, aliases, history, atomic alias writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.family import FAMILY_NAMES
from models.registry import (
    ModelRegistry,
    RegistryError,
    RegistryIntegrityError,
    UnknownModelError,
)
from models.spec import FeatureSpec
from models.training import TrainedModel, evaluate, train_family

FAST = {"torch_mlp": {"epochs": 10}, "logreg": {}, "hgb": {"max_iter": 50}}


@pytest.fixture(scope="module")
def trained(
    synth_split: tuple[pd.DataFrame, pd.DataFrame], synth_spec: FeatureSpec
) -> dict[str, TrainedModel]:
    train, _ = synth_split
    return {
        f: train_family(f, train, synth_spec, FAST[f], seed=0, device="cpu") for f in FAMILY_NAMES
    }


@pytest.fixture()
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "reg")


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_round_trip_and_training_serving_parity(
    family: str,
    trained: dict[str, TrainedModel],
    registry: ModelRegistry,
    synth_split: tuple[pd.DataFrame, pd.DataFrame],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, hold = synth_split
    model = trained[family]
    metrics = evaluate(model, hold)
    version = registry.register(model, "m", metrics, holdout_fingerprint="fp")
    assert version == 1
    loaded = registry.load("m", 1, device="cpu")
    assert (loaded.name, loaded.version, loaded.family) == ("m", 1, family)
    assert loaded.spec == model.spec
    # training-time predictions == registry-loaded predictions for the same rows
    np.testing.assert_allclose(loaded.score(hold), model.score(hold), rtol=0, atol=1e-6)
    np.testing.assert_allclose(
        loaded.explain(hold.head(20)), model.explain(hold.head(20)), atol=1e-6
    )
    # score_explain: exactly score + explain (dtypes, shapes, values), the frame encoded once
    frame = hold.head(20)
    scores, contributions = loaded.score(frame), loaded.explain(frame)
    transform = loaded.encoder.transform
    encoded: list[int] = []
    monkeypatch.setattr(
        loaded.encoder, "transform", lambda df: encoded.append(len(df)) or transform(df)
    )
    both = loaded.score_explain(frame)
    assert encoded == [20]
    for got, want in zip(both, (scores, contributions), strict=True):
        assert got.dtype == want.dtype == np.float64 and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    records = hold[model.spec.feature_names].head(10).to_dict(orient="records")
    np.testing.assert_allclose(loaded.score_records(records), model.score(hold.head(10)), atol=1e-6)
    meta = loaded.metadata
    assert meta["spec_hash"] == model.spec.hash
    assert meta["train_fingerprint"] == model.train_fingerprint
    assert meta["metrics"]["headline"]["roc_auc"] == pytest.approx(metrics.roc_auc)
    assert set(meta["library_versions"]) >= {"python", "torch", "scikit-learn", "numpy"}
    assert "git_commit" in meta and "created_at" in meta
    assert meta["params"] == model.params


def _version_files(registry: ModelRegistry) -> list[str]:
    return sorted(os.listdir(Path(registry.root) / "m" / "versions" / "1"))


@pytest.mark.parametrize("family", ["torch_mlp", "hgb"])
def test_one_byte_changed_in_any_file_is_refused(
    family: str, trained: dict[str, TrainedModel], registry: ModelRegistry
) -> None:
    registry.register(trained[family], "m")
    files = _version_files(registry)
    assert {"MANIFEST.json", "encoder.json", "spec.yaml", "metadata.json"} <= set(files)
    for fname in files:
        path = Path(registry.root) / "m" / "versions" / "1" / fname
        original = path.read_bytes()
        flipped = bytearray(original)
        flipped[len(flipped) // 2] ^= 0x01
        path.write_bytes(bytes(flipped))
        try:
            with pytest.raises(RegistryIntegrityError) as info:
                registry.load("m", 1)
            assert fname in str(info.value)
        finally:
            path.write_bytes(original)
    registry.load("m", 1)  # intact again


def test_missing_or_extra_file_is_refused(
    trained: dict[str, TrainedModel], registry: ModelRegistry
) -> None:
    registry.register(trained["logreg"], "m")
    base = Path(registry.root) / "m" / "versions" / "1"
    (base / "evil.pkl").write_bytes(b"x")
    with pytest.raises(RegistryIntegrityError, match=r"evil\.pkl"):
        registry.load("m", 1)
    (base / "evil.pkl").unlink()
    (base / "encoder.json").unlink()
    with pytest.raises(RegistryIntegrityError, match=r"encoder\.json"):
        registry.load("m", 1)


def test_unknown_model_version_alias(
    trained: dict[str, TrainedModel], registry: ModelRegistry
) -> None:
    with pytest.raises(UnknownModelError, match="unknown model 'nope'"):
        registry.load("nope")
    registry.register(trained["logreg"], "m")
    with pytest.raises(UnknownModelError, match="has no version 7; versions: \\[1\\]"):
        registry.load("m", 7)
    with pytest.raises(UnknownModelError, match="has no alias 'champion'"):
        registry.load("m", "champion")
    with pytest.raises(UnknownModelError, match="no alias 'staging'"):
        registry.resolve("m", "staging")
    assert registry.alias_version("m", "champion") is None
    assert registry.resolve("m", "latest") == 1
    with pytest.raises(UnknownModelError):
        registry.promote("m", 9, "champion")


def test_promote_promote_rollback_restores_previous_champion(
    trained: dict[str, TrainedModel], registry: ModelRegistry
) -> None:
    for family in ("logreg", "hgb", "logreg"):
        registry.register(trained[family], "m")
    registry.promote("m", 1, "champion", "first", {"promote": True, "reasons": ["no champion"]})
    registry.promote("m", 2, "champion", "better auc")
    registry.promote("m", 3, "challenger", "candidate")
    assert registry.alias_version("m", "champion") == 2
    event = registry.rollback("m", "champion", "incident 42")
    assert (event.from_version, event.to_version, event.action) == (2, 1, "rollback")
    assert registry.alias_version("m", "champion") == 1
    assert registry.alias_version("m", "challenger") == 3
    history = [e for e in registry.history("m") if e.alias == "champion"]
    assert [(e.action, e.from_version, e.to_version) for e in history] == [
        ("promote", None, 1),
        ("promote", 1, 2),
        ("rollback", 2, 1),
    ]
    assert history[0].verdict == {"promote": True, "reasons": ["no champion"]}
    assert history[2].reason == "incident 42"
    with pytest.raises(RegistryError, match="no previous version"):
        registry.rollback("m", "champion")
    lines = (Path(registry.root) / "m" / "alias_history.jsonl").read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(line)["ts"] for line in lines)
    rows = registry.list_versions("m")
    assert [(r.version, r.family, r.aliases) for r in rows] == [
        (1, "logreg", ["champion"]),
        (2, "hgb", []),
        (3, "logreg", ["challenger"]),
    ]


def test_alias_file_write_is_atomic(
    trained: dict[str, TrainedModel], registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.register(trained["logreg"], "m")
    registry.register(trained["logreg"], "m")
    registry.promote("m", 1, "champion")
    alias_file = Path(registry.root) / "m" / "aliases.json"
    before = alias_file.read_bytes()

    def crash(src: str, dst: str) -> None:
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        registry.promote("m", 2, "champion")
    monkeypatch.undo()
    assert alias_file.read_bytes() == before  # old file intact, never half-written
    assert registry.alias_version("m", "champion") == 1
    leftovers = [p for p in alias_file.parent.iterdir() if p.name.startswith(".tmp-")]
    assert leftovers == []


def test_fsspec_memory_store(
    trained: dict[str, TrainedModel], synth_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    _, hold = synth_split
    registry = ModelRegistry("memory://df-test-registry")
    v = registry.register(trained["hgb"], "mem")
    registry.promote("mem", v, "champion")
    loaded = registry.load("mem", "champion")
    np.testing.assert_allclose(loaded.score(hold), trained["hgb"].score(hold), atol=1e-12)
    assert registry.list_models() == ["mem"]
    assert registry.alias_version("mem", "champion") == v
    registry.files.fs.rm(registry.root, recursive=True)


def test_versions_increment_and_invalid_names(
    trained: dict[str, TrainedModel], registry: ModelRegistry
) -> None:
    assert [registry.register(trained["logreg"], "m") for _ in range(3)] == [1, 2, 3]
    assert registry.list_models() == ["m"]
    with pytest.raises(RegistryError, match="invalid model name"):
        registry.register(trained["logreg"], "../escape")
    with pytest.raises(RegistryError, match="invalid alias"):
        registry.promote("m", 1, "Bad Alias")
