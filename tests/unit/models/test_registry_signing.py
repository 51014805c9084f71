"""Registry signing: tampering that rewrites manifest and checksums, wrong keys, unsigned
(legacy) versions, dev keys, re-sealing, and export/import of signed bundles."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import stat
import tarfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.family import ModelFamily
from models.registry import ModelRegistry, RegistryError, RegistryIntegrityError
from models.registry_files import MANIFEST, MANIFEST_DIGEST, SIGNATURE
from models.signing import (
    DEV_SIGNING_KEY,
    DEV_VERIFY_KEY,
    RegistryKeyError,
    RegistryKeys,
    Signer,
    Verifier,
    generate_key_pair,
)
from models.spec import FeatureSpec
from models.training import TrainedModel, train_family


@pytest.fixture(autouse=True)
def _own_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # dev keys (generated when none is configured) go to this test's home, not var/
    monkeypatch.setenv("DECISIONFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DECISIONFLOW_REGISTRY__SIGNING_KEY", raising=False)
    monkeypatch.delenv("DECISIONFLOW_REGISTRY__VERIFY_KEY", raising=False)


@pytest.fixture(scope="module")
def models(
    synth_split: tuple[pd.DataFrame, pd.DataFrame], synth_spec: FeatureSpec
) -> dict[str, TrainedModel]:
    train, _ = synth_split
    return {
        "logreg": train_family("logreg", train, synth_spec, {}, seed=0, device="cpu"),
        # the same family fitted on other rows: a plausible substitute artifact
        "logreg_other": train_family(
            "logreg", train.sample(frac=0.3, random_state=1), synth_spec, {}, seed=1, device="cpu"
        ),
        "torch_mlp": train_family(
            "torch_mlp", train, synth_spec, {"epochs": 5}, seed=0, device="cpu"
        ),
    }


@pytest.fixture(scope="module")
def key_pairs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    root = tmp_path_factory.mktemp("keys")
    return {who: generate_key_pair(root / who) for who in ("ours", "theirs")}


def keys(pair: tuple[Path, Path], signing: bool = True) -> RegistryKeys:
    return RegistryKeys(signing_key=pair[0] if signing else None, verify_key=pair[1])


@pytest.fixture()
def registry(tmp_path: Path, key_pairs: dict[str, tuple[Path, Path]]) -> ModelRegistry:
    return ModelRegistry(tmp_path / "reg", keys=keys(key_pairs["ours"]))


def vdir(registry: ModelRegistry, version: int = 1, name: str = "m") -> Path:
    return Path(registry.root) / name / "versions" / str(version)


def rehash(base: Path, legacy: bool = False) -> None:
    """What an attacker with write access can do: recompute MANIFEST.json and its .sha256."""
    doc = json.loads((base / MANIFEST).read_bytes())
    doc["files"] = {
        f: hashlib.sha256((base / f).read_bytes()).hexdigest()
        for f in os.listdir(base)
        if f not in {MANIFEST, MANIFEST_DIGEST, SIGNATURE}
    }
    if legacy:  # the manifest of a version registered before signing existed
        doc = {"files": doc["files"]}
    manifest = json.dumps(doc, indent=1, sort_keys=True).encode()
    (base / MANIFEST).write_bytes(manifest)
    (base / MANIFEST_DIGEST).write_text(hashlib.sha256(manifest).hexdigest() + "\n")


def no_deserialising(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("an artifact was deserialised before verification")

    monkeypatch.setattr(ModelFamily, "load", refuse)


# ------------------------------------------------------------------ tampering


def test_swapped_artifact_with_rewritten_manifest_is_refused(
    models: dict[str, TrainedModel],
    registry: ModelRegistry,
    synth_split: tuple[pd.DataFrame, pd.DataFrame],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, hold = synth_split
    registry.register(models["logreg"], "m")
    registry.register(models["logreg_other"], "m")
    for fname in ("model.skops", "encoder.json"):
        shutil.copy(vdir(registry, 2) / fname, vdir(registry, 1) / fname)
    rehash(vdir(registry, 1))
    with monkeypatch.context() as m:
        no_deserialising(m)
        with pytest.raises(RegistryIntegrityError, match=r"m v1: MANIFEST\.json\.sig does not"):
            registry.load("m", 1)
    # without the signature check the swap would go unnoticed: v1 would score as v2
    monkeypatch.setattr(Verifier, "check", lambda *args: None)
    swapped = registry.load("m", 1)
    np.testing.assert_allclose(swapped.score(hold), models["logreg_other"].score(hold))


@pytest.mark.parametrize("family", ["logreg", "torch_mlp"])
def test_garbage_artifact_is_an_integrity_error_never_a_zip_or_pickle_error(
    family: str,
    models: dict[str, TrainedModel],
    registry: ModelRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry.register(models[family], "m")
    base = vdir(registry)
    model_file = next(f for f in os.listdir(base) if f.startswith("model."))
    (base / model_file).write_bytes(b"PK\x03\x04 not a model")
    rehash(base)
    no_deserialising(monkeypatch)
    with pytest.raises(RegistryIntegrityError, match="m v1"):
        registry.load("m", 1)
    with pytest.raises(RegistryIntegrityError):
        registry.metadata("m", 1)


def test_signature_from_another_key_or_missing_is_refused(
    models: dict[str, TrainedModel],
    registry: ModelRegistry,
    key_pairs: dict[str, tuple[Path, Path]],
) -> None:
    registry.register(models["logreg"], "m")
    base = vdir(registry)
    # a host trusting another key refuses a genuine version
    other_host = ModelRegistry(registry.root, keys=keys(key_pairs["theirs"], signing=False))
    with pytest.raises(RegistryIntegrityError, match="signed with another key"):
        other_host.load("m", 1)
    # an attacker's own signature over a rewritten manifest
    (base / "encoder.json").write_bytes((base / "encoder.json").read_bytes() + b" ")
    rehash(base)
    theirs = RegistryKeys(signing_key=key_pairs["theirs"][0]).signer()
    (base / SIGNATURE).write_bytes(theirs.sign((base / MANIFEST).read_bytes()))
    with pytest.raises(RegistryIntegrityError, match="signed with another key"):
        registry.load("m", 1)
    # ... claiming our key id does not help
    ours_id = registry.keys.verifier().key_id
    forged = json.loads((base / SIGNATURE).read_bytes()) | {"key_id": ours_id}
    (base / SIGNATURE).write_text(json.dumps(forged))
    with pytest.raises(RegistryIntegrityError, match=r"does not match MANIFEST\.json"):
        registry.load("m", 1)
    (base / SIGNATURE).unlink()
    with pytest.raises(RegistryIntegrityError, match="not signed") as info:
        registry.load("m", 1)
    assert "decisionflow models sign m 1" in str(info.value)


def test_a_version_copied_over_another_is_refused(
    models: dict[str, TrainedModel], registry: ModelRegistry
) -> None:
    registry.register(models["logreg"], "m")
    registry.register(models["logreg_other"], "m")
    shutil.rmtree(vdir(registry, 1))
    shutil.copytree(vdir(registry, 2), vdir(registry, 1))  # every signature still valid
    with pytest.raises(RegistryIntegrityError, match="signed for m v2, not m v1"):
        registry.load("m", 1)


# ------------------------------------------------------------- legacy versions


def make_legacy(base: Path) -> None:
    (base / SIGNATURE).unlink()
    rehash(base, legacy=True)


def test_unsigned_legacy_version_is_refused_until_signed(
    models: dict[str, TrainedModel],
    registry: ModelRegistry,
    synth_split: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    _, hold = synth_split
    registry.register(models["logreg"], "m")
    make_legacy(vdir(registry))
    with pytest.raises(RegistryIntegrityError, match="not signed") as info:
        registry.load("m", 1)
    assert "decisionflow models sign m 1" in str(info.value)
    result = registry.sign("m", 1)
    assert result.signed and "not signed" in result.before
    assert result.key_id == registry.keys.verifier().key_id
    np.testing.assert_allclose(registry.load("m", 1).score(hold), models["logreg"].score(hold))
    assert not registry.sign("m", 1).signed  # already signed with this key: nothing to do


def test_sign_refuses_changed_files_and_needs_force_for_a_failing_signature(
    models: dict[str, TrainedModel],
    registry: ModelRegistry,
    key_pairs: dict[str, tuple[Path, Path]],
) -> None:
    registry.register(models["logreg"], "m")
    registry.register(models["logreg"], "m")
    make_legacy(vdir(registry, 1))
    (vdir(registry, 1) / "spec.yaml").write_text("tampered: true\n")
    with pytest.raises(RegistryIntegrityError, match=r"sha256 mismatch for spec\.yaml"):
        registry.sign("m", 1)
    # v2 signed with a key since retired: re-signing it is a deliberate act
    rotated = ModelRegistry(registry.root, keys=keys(key_pairs["theirs"]))
    with pytest.raises(RegistryIntegrityError, match="needs --force"):
        rotated.sign("m", 2)
    assert rotated.sign("m", 2, force=True).signed
    rotated.load("m", 2)
    with pytest.raises(RegistryIntegrityError, match="another key"):
        registry.load("m", 2)


def test_seal_and_add_files_re_sign_a_version(
    models: dict[str, TrainedModel], registry: ModelRegistry
) -> None:
    registry.register(models["logreg"], "m")
    (vdir(registry) / "model.onnx").write_bytes(b"runtime variant")
    with pytest.raises(RegistryIntegrityError, match=r"not in MANIFEST\.json: \['model\.onnx'\]"):
        registry.load("m", 1)
    with registry.files.lock("m"):
        registry.files.seal("m", 1, registry.keys.signer())
    assert registry.verify("m", 1)["model.onnx"] == b"runtime variant"
    registry.load("m", 1)
    # add_files: verify, write, re-seal in one step
    registry.add_files("m", 1, {"variant.int8.json": b"{}"})
    assert set(registry.verify("m", 1)) >= {"model.onnx", "variant.int8.json"}
    with pytest.raises(RegistryError, match="exists already"):
        registry.add_files("m", 1, {"model.onnx": b"other"})
    with pytest.raises(RegistryError, match="invalid file name"):
        registry.add_files("m", 1, {"../x": b""})
    (vdir(registry) / "encoder.json").write_bytes(b"{}")  # never re-sign a tampered version
    with pytest.raises(RegistryIntegrityError, match=r"encoder\.json"):
        registry.add_files("m", 1, {"late.json": b"{}"})
    assert not (vdir(registry) / "late.json").exists()


# ------------------------------------------------------------------------ keys


def test_verify_only_host_loads_but_cannot_register(
    models: dict[str, TrainedModel],
    registry: ModelRegistry,
    key_pairs: dict[str, tuple[Path, Path]],
) -> None:
    registry.register(models["logreg"], "m")
    worker = ModelRegistry(registry.root, keys=keys(key_pairs["ours"], signing=False))
    worker.load("m", 1)
    with pytest.raises(RegistryKeyError, match="no registry signing key"):
        worker.register(models["logreg"], "m")
    with pytest.raises(RegistryKeyError, match="does not match the verify key"):
        RegistryKeys(key_pairs["theirs"][0], key_pairs["ours"][1]).signer()


def test_dev_key_pair_is_generated_once_private_and_never_logged(
    tmp_path: Path, models: dict[str, TrainedModel], caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(RegistryKeyError, match="no registry verify key"):
        RegistryKeys.from_env({}).verifier()  # verifying never creates keys
    caplog.set_level(logging.DEBUG)
    registry = ModelRegistry(tmp_path / "reg")  # nothing configured: the dev pair
    registry.register(models["logreg"], "m")
    registry.load("m", 1)
    dev = tmp_path / "home" / "keys"
    assert stat.S_IMODE((dev / DEV_SIGNING_KEY).stat().st_mode) == 0o600
    assert (dev / DEV_VERIFY_KEY).is_file()
    pem = (dev / DEV_SIGNING_KEY).read_text()
    body = "".join(pem.splitlines()[1:-1])
    assert "generated a development key pair" in caplog.text
    assert "PRIVATE KEY" not in caplog.text and body not in caplog.text
    assert body not in repr(registry.keys.signer())
    # a second process finds the same pair
    assert RegistryKeys.from_env({}).signer().key_id == registry.keys.verifier().key_id
    assert (dev / DEV_SIGNING_KEY).read_text() == pem


def test_bad_key_files_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "junk.pem").write_text("not a key")
    with pytest.raises(RegistryKeyError, match="not an unencrypted PEM private key"):
        RegistryKeys(signing_key=tmp_path / "junk.pem").signer()
    with pytest.raises(RegistryKeyError, match="not a PEM public key"):
        RegistryKeys(verify_key=tmp_path / "junk.pem").verifier()
    with pytest.raises(RegistryKeyError, match="cannot read"):
        RegistryKeys(verify_key=tmp_path / "absent.pem").verifier()
    env = {"DECISIONFLOW_REGISTRY__VERIFY_KEY": str(tmp_path / "v.pem")}
    assert RegistryKeys.from_env(env) == RegistryKeys(verify_key=tmp_path / "v.pem")
    with pytest.raises(RegistryKeyError, match="already exists"):
        generate_key_pair(tmp_path / "k")
        generate_key_pair(tmp_path / "k")


# --------------------------------------------------------------------- bundles


@pytest.mark.parametrize("suffix", [".tar", ".tar.gz"])
def test_export_import_round_trip_scores_the_same(
    suffix: str,
    tmp_path: Path,
    models: dict[str, TrainedModel],
    registry: ModelRegistry,
    key_pairs: dict[str, tuple[Path, Path]],
    synth_split: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    _, hold = synth_split
    registry.register(models["logreg"], "m")
    registry.register(models["torch_mlp"], "m")
    registry.promote("m", 2)
    bundle = tmp_path / f"m-v2{suffix}"
    assert registry.export_bundle("m", "champion", bundle) == 2
    worker = ModelRegistry(tmp_path / "other", keys=keys(key_pairs["ours"], signing=False))
    result = worker.import_bundle(bundle)
    assert (result.name, result.version, result.created) == ("m", 2, True)
    got, want = worker.load("m", 2, device="cpu"), registry.load("m", 2, device="cpu")
    np.testing.assert_array_equal(got.score(hold), want.score(hold))
    assert got.metadata == want.metadata
    assert worker.aliases("m") == {}  # aliases never travel
    assert not worker.import_bundle(bundle).created  # the same version again: kept as is
    # another version 2 of m already there: never overwritten
    clash = ModelRegistry(tmp_path / "clash", keys=keys(key_pairs["ours"]))
    clash.register(models["logreg"], "m")
    clash.register(models["logreg_other"], "m")
    with pytest.raises(RegistryError, match=r"already exists .* with other content"):
        clash.import_bundle(bundle)


def bundle_members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar}  # type: ignore[union-attr]


def write_tar(path: Path, members: dict[str, bytes], extra: Sequence[tarfile.TarInfo] = ()) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info)


def assert_nothing_imported(registry: ModelRegistry) -> None:
    assert registry.list_models() == []
    assert not Path(registry.root).exists() or not any(Path(registry.root).rglob("*.json"))


def test_tampered_bundle_is_refused_and_nothing_written(
    tmp_path: Path,
    models: dict[str, TrainedModel],
    registry: ModelRegistry,
    key_pairs: dict[str, tuple[Path, Path]],
) -> None:
    registry.register(models["logreg"], "m")
    good = tmp_path / "good.tar"
    registry.export_bundle("m", 1, good)
    target = ModelRegistry(tmp_path / "target", keys=keys(key_pairs["ours"], signing=False))
    members = bundle_members(good)

    # an artifact changed, manifest and checksum recomputed to match
    stage = tmp_path / "stage"
    stage.mkdir()
    for name, data in members.items():
        (stage / name).write_bytes(data)
    (stage / "metadata.json").write_bytes(members["metadata.json"].replace(b'"m"', b'"m" '))
    rehash(stage)
    tampered = {n: (stage / n).read_bytes() for n in members}
    write_tar(tmp_path / "tampered.tar", tampered)
    with pytest.raises(RegistryIntegrityError, match=r"does not match MANIFEST\.json"):
        target.import_bundle(tmp_path / "tampered.tar")
    # a changed file alone
    write_tar(tmp_path / "changed.tar", members | {"encoder.json": b"{}"})
    with pytest.raises(RegistryIntegrityError, match=r"sha256 mismatch for encoder\.json"):
        target.import_bundle(tmp_path / "changed.tar")
    # no signature, or an extra file
    unsigned = {n: d for n, d in members.items() if n != SIGNATURE}
    write_tar(tmp_path / "unsigned.tar", unsigned)
    with pytest.raises(RegistryIntegrityError, match="not signed"):
        target.import_bundle(tmp_path / "unsigned.tar")
    write_tar(tmp_path / "extra.tar", members | {"evil.pkl": b"x"})
    with pytest.raises(RegistryIntegrityError, match=r"evil\.pkl"):
        target.import_bundle(tmp_path / "extra.tar")
    # signed with a key this host does not trust
    stranger = ModelRegistry(tmp_path / "reg", keys=keys(key_pairs["theirs"], signing=False))
    with pytest.raises(RegistryIntegrityError, match="another key"):
        stranger.import_bundle(good)
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(RegistryIntegrityError, match="not a readable tar"):
        target.import_bundle(tmp_path / "junk.tar")
    assert_nothing_imported(target)
    assert target.import_bundle(good).created  # the genuine bundle still imports


@pytest.mark.parametrize("evil", ["../evil.json", "/tmp/evil.json", "sub/evil.json", ".hidden"])
def test_path_traversal_in_a_bundle_is_refused(
    evil: str,
    tmp_path: Path,
    models: dict[str, TrainedModel],
    registry: ModelRegistry,
) -> None:
    registry.register(models["logreg"], "m")
    good = tmp_path / "good.tar"
    registry.export_bundle("m", 1, good)
    write_tar(tmp_path / "evil.tar", bundle_members(good) | {evil: b"{}"})
    target = ModelRegistry(tmp_path / "work" / "target", keys=registry.keys)
    with pytest.raises(RegistryIntegrityError, match="plain file names only"):
        target.import_bundle(tmp_path / "evil.tar")
    assert_nothing_imported(target)
    assert not (tmp_path / "work" / "evil.json").exists()


def test_links_in_a_bundle_are_refused(
    tmp_path: Path, models: dict[str, TrainedModel], registry: ModelRegistry
) -> None:
    registry.register(models["logreg"], "m")
    good = tmp_path / "good.tar"
    registry.export_bundle("m", 1, good)
    link = tarfile.TarInfo("encoder2.json")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    write_tar(tmp_path / "link.tar", bundle_members(good), [link])
    target = ModelRegistry(tmp_path / "target", keys=registry.keys)
    with pytest.raises(RegistryIntegrityError, match="not a regular file"):
        target.import_bundle(tmp_path / "link.tar")
    assert_nothing_imported(target)


def test_signer_and_verifier_never_show_the_key(key_pairs: dict[str, tuple[Path, Path]]) -> None:
    signer = RegistryKeys(signing_key=key_pairs["ours"][0]).signer()
    assert isinstance(signer, Signer)
    body = "".join(key_pairs["ours"][0].read_text().splitlines()[1:-1])
    assert body not in repr(signer) and body not in repr(signer.verifier())
