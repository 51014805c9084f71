"""The `models` CLI commands (thin wrappers), driven with click's CliRunner."""

from __future__ import annotations

import io
import json
import stat
import tarfile
from pathlib import Path

import click
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from models.data import load_frame
from models.registry import ModelRegistry
from models.registry_files import MANIFEST, SIGNATURE
from models.spec import FeatureSpec
from models.training import train_family
from workers.commands.models_cmd import models_group, register


@pytest.fixture()
def small_csv(tmp_path: Path, credit_df: pd.DataFrame, credit_spec: FeatureSpec) -> Path:
    path = tmp_path / "credit_small.csv"
    credit_df.sample(600, random_state=0).drop(columns=["application_id"]).to_csv(path, index=False)
    assert len(load_frame(credit_spec, path)) == 600
    return path


def test_register_adds_the_models_group_only() -> None:
    group = click.Group("cli")
    register(group)
    assert set(group.commands) == {"models"}  # each command once, under `models`
    assert set(models_group.commands) == {
        "train",
        "evaluate",
        "promote",
        "rollback",
        "list",
        "compare",
        "sign",
        "export",
        "import",
        "keygen",
        "optimise",
    }


def test_train_list_promote_rollback_evaluate(
    tmp_path: Path, small_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DECISIONFLOW_RUNS_DIR", str(tmp_path / "runs"))
    runner = CliRunner()
    reg = str(tmp_path / "reg")
    base = ["--registry", reg]
    train = ["train", "--families", "logreg,hgb", "--no-tune", "--source", str(small_csv), *base]
    result = runner.invoke(models_group, [*train, "--promote"])
    assert result.exit_code == 0, result.output
    assert "PROMOTED to champion" in result.output and "no champion" in result.output
    assert "registered credit_data v1" in result.output
    result = runner.invoke(models_group, train)  # the best again, as challenger only
    assert result.exit_code == 0, result.output
    assert (
        "registered credit_data v2" in result.output and "challenger, NOT champion" in result.output
    )
    result = runner.invoke(models_group, ["list", *base])
    assert result.exit_code == 0, result.output
    assert "credit_data" in result.output and "champion" in result.output
    assert "challenger" in result.output
    for version in ("1", "2"):
        result = runner.invoke(
            models_group, ["promote", "credit_data", version, "--reason", "t", *base]
        )
        assert result.exit_code == 0, result.output
    result = runner.invoke(models_group, ["rollback", "credit_data", *base])
    assert result.exit_code == 0, result.output
    assert "rolled back v2 -> v1" in result.output
    result = runner.invoke(
        models_group, ["evaluate", "credit_data", "1", "--source", str(small_csv), *base]
    )
    assert result.exit_code == 0, result.output
    assert "roc_auc" in result.output
    result = runner.invoke(models_group, ["evaluate", "credit_data", "staging", *base])
    assert result.exit_code != 0 and "no alias 'staging'" in result.output
    result = runner.invoke(models_group, ["promote", "credit_data", "99", "--reason", "x", *base])
    assert result.exit_code != 0 and "no version 99" in result.output


def test_registry_url_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DECISIONFLOW_REGISTRY_URL", str(tmp_path / "env-reg"))
    result = CliRunner().invoke(models_group, ["list"])
    assert result.exit_code == 0
    assert str(tmp_path / "env-reg") in result.output


def test_keygen_sign_export_import(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    synth_split: tuple[pd.DataFrame, pd.DataFrame],
    synth_spec: FeatureSpec,
) -> None:
    runner = CliRunner()
    monkeypatch.delenv("DECISIONFLOW_REGISTRY__VERIFY_KEY", raising=False)
    result = runner.invoke(models_group, ["keygen", "--out-dir", str(tmp_path / "keys")])
    assert result.exit_code == 0, result.output
    private, public = (
        tmp_path / "keys" / "registry_signing.pem",
        tmp_path / "keys" / "registry_verify.pem",
    )
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert (
        "PRIVATE KEY" not in result.output
        and f"DECISIONFLOW_REGISTRY__VERIFY_KEY={public}" in result.output
    )
    result = runner.invoke(models_group, ["keygen", "--out-dir", str(tmp_path / "keys")])
    assert result.exit_code != 0 and "already exists" in result.output

    # the training host: the signing key from the environment
    monkeypatch.setenv("DECISIONFLOW_REGISTRY__SIGNING_KEY", str(private))
    train, hold = synth_split
    source = ModelRegistry(tmp_path / "source")
    source.register(train_family("logreg", train, synth_spec, {}, seed=0, device="cpu"), "m")
    base = ["--registry", str(tmp_path / "source")]
    # a version registered before signing: refused at load, signed by the operator
    version_dir = tmp_path / "source" / "m" / "versions" / "1"
    (version_dir / SIGNATURE).unlink()
    bundle = tmp_path / "m-v1.tar"
    result = runner.invoke(models_group, ["export", "m", "1", "--out", str(bundle), *base])
    assert result.exit_code != 0 and "decisionflow models sign m 1" in result.output
    result = runner.invoke(models_group, ["sign", "m", "1", *base])
    assert result.exit_code == 0, result.output
    assert "was: m v1: not signed" in result.output and "m v1: signed with key" in result.output
    result = runner.invoke(models_group, ["sign", "m", "1", *base])
    assert result.exit_code == 0 and "already signed" in result.output
    result = runner.invoke(models_group, ["export", "m", "latest", "--out", str(bundle), *base])
    assert result.exit_code == 0, result.output
    assert f"exported m v1 to {bundle}" in result.output

    # a worker host: the public key only
    monkeypatch.delenv("DECISIONFLOW_REGISTRY__SIGNING_KEY")
    monkeypatch.setenv("DECISIONFLOW_REGISTRY__VERIFY_KEY", str(public))
    target = ["--registry", str(tmp_path / "target")]
    result = runner.invoke(models_group, ["import", str(bundle), *target])
    assert result.exit_code == 0, result.output
    assert "m v1: imported" in result.output
    result = runner.invoke(models_group, ["import", str(bundle), *target])
    assert result.exit_code == 0 and "already present" in result.output
    loaded = ModelRegistry(tmp_path / "target").load("m", 1)
    np.testing.assert_array_equal(loaded.score(hold), source.load("m", 1).score(hold))
    result = runner.invoke(models_group, ["sign", "m", "1", *target])
    assert result.exit_code != 0 and "no registry signing key" in result.output

    # a tampered bundle: refused, nothing written
    with tarfile.open(bundle) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar}  # type: ignore[union-attr]
    manifest = json.loads(members[MANIFEST])
    manifest["name"] = "n"
    members[MANIFEST] = json.dumps(manifest, indent=1, sort_keys=True).encode()
    tampered = tmp_path / "tampered.tar"
    with tarfile.open(tampered, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    other = ["--registry", str(tmp_path / "other")]
    result = runner.invoke(models_group, ["import", str(tampered), *other])
    assert result.exit_code != 0 and "MANIFEST.json" in result.output
    assert not (tmp_path / "other").exists()
