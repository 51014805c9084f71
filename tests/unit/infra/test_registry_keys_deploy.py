"""Registry signing keys in the deploy files: who gets the private key, who only the public one.

Compose: registry-keys-init generates the pair once into a volume (its script is run here, twice,
against temporary folders), Airflow mounts the pair, the worker only a public copy. Kubernetes:
the base holds only a placeholder public key ConfigMap mounted into the workers; no manifest
names a signing key (it belongs to the Airflow Helm release, see docs/deploy.md).
"""

from __future__ import annotations

import os
import posixpath
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from models.signing import DEV_SIGNING_KEY, DEV_VERIFY_KEY, SIGNING_KEY_ENV, VERIFY_KEY_ENV
from tests import deployfiles

INIT = "registry-keys-init"
PAIR_VOLUME = "registry-keys"
PUBLIC_VOLUME = "registry-verify-key"
VERIFY_CONFIGMAP = "decisionflow-registry-verify-key"
PLACEHOLDER = "REPLACE_ME"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = yaml.safe_load(deployfiles.COMPOSE.read_text())
    assert isinstance(doc, dict)
    return doc


def mounts(service: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """Short-syntax volumes as {target: (source, read_only)}."""
    found = {}
    for spec in service.get("volumes", []):
        source, target, *mode = str(spec).split(":")
        found[target] = (source, "ro" in mode)
    return found


def mount_of(service: dict[str, Any], path: str) -> tuple[str, bool]:
    """The (source, read_only) of the mount holding the file ``path``."""
    return mounts(service)[posixpath.dirname(path)]


# --------------------------------------------------------------------------- compose


def test_only_airflow_gets_the_private_key(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {PAIR_VOLUME, PUBLIC_VOLUME} <= set(compose["volumes"])
    airflow = services["airflow"]
    env = airflow["environment"]
    assert posixpath.basename(env[SIGNING_KEY_ENV]) == DEV_SIGNING_KEY
    assert mount_of(airflow, env[SIGNING_KEY_ENV]) == (PAIR_VOLUME, True)
    assert mount_of(airflow, env[VERIFY_KEY_ENV]) == (PAIR_VOLUME, True)
    for name, service in services.items():
        if name in ("airflow", INIT):
            continue
        assert SIGNING_KEY_ENV not in service.get("environment", {}), name
        assert PAIR_VOLUME not in {src for src, _ in mounts(service).values()}, name


def test_worker_mounts_only_the_public_copy_read_only(compose: dict[str, Any]) -> None:
    services = compose["services"]
    worker = services["worker"]
    path = worker["environment"][VERIFY_KEY_ENV]
    assert posixpath.basename(path) == DEV_VERIFY_KEY
    assert mount_of(worker, path) == (PUBLIC_VOLUME, True)
    # the init writes that volume where it copies the public key to
    init = services[INIT]
    verify_dir = init["environment"]["VERIFY_DIR"]
    assert mounts(init)[verify_dir] == (PUBLIC_VOLUME, False)
    assert mounts(init)[init["environment"]["KEYS_DIR"]] == (PAIR_VOLUME, False)


@pytest.mark.parametrize("name", ["airflow", "worker"])
def test_key_users_wait_for_the_keys(compose: dict[str, Any], name: str) -> None:
    depends = compose["services"][name]["depends_on"]
    assert depends[INIT]["condition"] == "service_completed_successfully"


def test_image_creates_the_init_mount_points() -> None:
    """A new named volume takes the owner of the image folder it is mounted on: without the
    folder in the image (owned by the app user) the non-root init could not write the keys."""
    services = yaml.safe_load(deployfiles.COMPOSE.read_text())["services"]
    text = " ".join(ln for ln in deployfiles._dockerfile_lines() if ln.startswith("RUN "))
    for target in mounts(services[INIT]):
        assert target in text and target.startswith("/var/lib/decisionflow/"), target
    assert "chown -R decisionflow:decisionflow /opt/airflow /var/lib/decisionflow" in text


def run_init(compose: dict[str, Any], keys: Path, public: Path) -> subprocess.CompletedProcess[str]:
    """The init's own entrypoint + script, with its two volumes replaced by folders."""
    init = compose["services"][INIT]
    (script,) = init["command"]
    assert "${" not in script  # no compose interpolation: $$ only
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(keys.parent),
        "DECISIONFLOW_HOME": str(keys.parent / "home"),
        "KEYS_DIR": str(keys),
        "VERIFY_DIR": str(public),
    }
    argv = [*init["entrypoint"], script.replace("$$", "$")]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_keys_init_generates_once_keeps_the_pair_and_refuses_half_a_pair(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    keys, public = tmp_path / "keys", tmp_path / "verify"
    keys.mkdir()
    public.mkdir()
    first = run_init(compose, keys, public)
    assert first.returncode == 0, first.stderr
    private = (keys / DEV_SIGNING_KEY).read_bytes()
    assert (keys / DEV_SIGNING_KEY).stat().st_mode & 0o077 == 0
    assert sorted(p.name for p in public.iterdir()) == [DEV_VERIFY_KEY]
    assert (public / DEV_VERIFY_KEY).read_bytes() == (keys / DEV_VERIFY_KEY).read_bytes()
    assert b"PRIVATE" not in (public / DEV_VERIFY_KEY).read_bytes()

    second = run_init(compose, keys, public)  # every later `up`
    assert second.returncode == 0, second.stderr
    assert (keys / DEV_SIGNING_KEY).read_bytes() == private
    assert sorted(p.name for p in public.iterdir()) == [DEV_VERIFY_KEY]

    (keys / DEV_VERIFY_KEY).unlink()  # half a pair: fail, never generate over the other half
    third = run_init(compose, keys, public)
    assert third.returncode != 0 and "half a key pair" in third.stderr
    assert (keys / DEV_SIGNING_KEY).read_bytes() == private


# --------------------------------------------------------------------------- kubernetes


def find(docs: dict[str, list[dict[str, Any]]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = [
        d
        for file_docs in docs.values()
        for d in file_docs
        if d.get("kind") == kind and d["metadata"]["name"] == name
    ]
    return doc


def test_workers_mount_the_public_key_the_configmap_names() -> None:
    docs = deployfiles.k8s_docs()
    path = deployfiles.configmap()[VERIFY_KEY_ENV]
    worker = find(docs, "StatefulSet", "decisionflow-worker")
    pod = worker["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == posixpath.dirname(path)]
    assert mount.get("readOnly") is True and "subPath" not in mount
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"]["name"] == VERIFY_CONFIGMAP
    (item,) = volume["configMap"]["items"]
    assert item["path"] == posixpath.basename(path)
    # the base object is an obvious placeholder that an overlay replaces
    key_map = find(docs, "ConfigMap", VERIFY_CONFIGMAP)
    assert key_map["data"] == {item["key"]: PLACEHOLDER}


def test_no_manifest_holds_or_names_a_signing_key() -> None:
    for path in sorted(deployfiles.K8S.glob("*.y*ml")):
        text = path.read_text()
        assert SIGNING_KEY_ENV not in text, path.name
        assert DEV_SIGNING_KEY not in text, path.name
        assert "PRIVATE KEY" not in text and "PUBLIC KEY-----" not in text, path.name
