"""Versioned model registry on a local directory or any fsspec URL.

Layout::

    <root>/<name>/versions/<N>/params.json, model.pt|model.skops, encoder.json, spec.yaml,
                               metadata.json, MANIFEST.json, MANIFEST.json.sha256
    <root>/<name>/aliases.json          {"champion": 3, "challenger": 4}
    <root>/<name>/alias_history.jsonl   one JSON object per alias move (append-only)

Every load checks, before anything is deserialised, ``MANIFEST.json`` against
``MANIFEST.json.sha256``, its Ed25519 signature ``MANIFEST.json.sig`` against the trusted public
key (:mod:`models.signing`), that it was signed for this name and version, and the sha256 of
every file against it; any failure (a changed, missing or unlisted file, a rewritten and
re-hashed manifest, a missing signature or one made with another key) raises
:class:`RegistryIntegrityError` naming the version and what failed. Versions registered before
signing existed are refused until an operator checks and signs them (:meth:`ModelRegistry.sign`,
``decisionflow models sign NAME VERSION``). Model files are never pickles: torch weights load
with ``weights_only=True``, scikit-learn via skops allow-lists.

One version travels as one signed bundle (:meth:`ModelRegistry.export_bundle` /
:meth:`ModelRegistry.import_bundle`): a tar of its files and seal, verified before import.

On a local filesystem new versions are staged and renamed into place, alias files are replaced
atomically (temp file + ``os.replace``) and alias moves hold an exclusive ``flock``. On other
fsspec stores each file is a single ``put`` (atomic per object on object stores); version
numbers there are claimed optimistically (MANIFEST written last marks a version complete).
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import re
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from models import paths
from models.aliases import AliasBook, AliasEvent
from models.encoding import TabularEncoder
from models.family import ModelFamily
from models.metrics import Metrics
from models.model import Model
from models.registry_files import (
    MANIFEST,
    NAME_RE,
    SEAL_FILES,
    SIGNATURE,
    RegistryError,
    RegistryFiles,
    RegistryIntegrityError,
    UnknownModelError,
    check_sealed,
    dict_reader,
    read_bundle,
    write_bundle,
)
from models.signing import RegistryKeys
from models.spec import SpecError, spec_from_yaml
from models.training import TrainedModel

__all__ = [
    "REGISTRY_URL_ENV",
    "AliasEvent",
    "ImportResult",
    "LoadedModel",
    "ModelRegistry",
    "RegistryError",
    "RegistryIntegrityError",
    "RegistryKeys",
    "SignResult",
    "UnknownModelError",
    "VersionInfo",
    "default_registry_url",
]

REGISTRY_URL_ENV = "DECISIONFLOW_REGISTRY_URL"
ENCODER_FILE = "encoder.json"
SPEC_FILE = "spec.yaml"
METADATA_FILE = "metadata.json"
_ALIAS_RE = re.compile(r"^[a-z][a-z0-9_-]*$")


def default_registry_url() -> str:
    """``$DECISIONFLOW_REGISTRY_URL`` if set, else ``registry/`` in the home (models.paths)."""
    return paths.registry_url()


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", commit) else None


def _library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for dist in ("torch", "scikit-learn", "numpy", "pandas", "skops"):
        try:
            versions[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


@dataclass(frozen=True)
class VersionInfo:
    """A summary row of one registered version."""

    name: str
    version: int
    family: str
    created_at: str
    spec_hash: str
    metrics: dict[str, float | None]
    aliases: list[str]


@dataclass
class LoadedModel(Model):
    """A verified model from the registry, ready to score raw frames."""

    name: str
    version: int
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SignResult:
    """What :meth:`ModelRegistry.sign` did to one version."""

    name: str
    version: int
    key_id: str
    signed: bool  # False: it already carried a valid signature of this key
    before: str  # the signature check's verdict before signing


@dataclass(frozen=True)
class ImportResult:
    """What :meth:`ModelRegistry.import_bundle` did."""

    name: str
    version: int
    key_id: str
    created: bool  # False: the registry already held this exact version


class ModelRegistry:
    """Versioned artifacts + aliases + alias history under one root (path or fsspec URL).

    Storage and integrity: :class:`~models.registry_files.RegistryFiles`; aliases and their
    history: :class:`~models.aliases.AliasBook`. This class names, registers, resolves and
    loads versions.
    """

    def __init__(
        self,
        url: str | Path | None = None,
        storage_options: Mapping[str, Any] | None = None,
        keys: RegistryKeys | None = None,
    ) -> None:
        self.url = str(url) if url is not None else default_registry_url()
        # signing key (training side) / verify key; default: DECISIONFLOW_REGISTRY__* paths
        self.keys = keys if keys is not None else RegistryKeys.from_env()
        self.files = RegistryFiles(self.url, dict(storage_options or {}))
        self.book = AliasBook(self.files)
        self.root = self.files.root

    @staticmethod
    def _check_name(name: str) -> None:
        if not NAME_RE.match(name):
            raise RegistryError(f"invalid model name {name!r} (letters, digits, _ . - only)")

    def _unknown(self, name: str) -> UnknownModelError:
        return UnknownModelError(
            f"unknown model {name!r} in registry {self.url}; models: {self.list_models()}"
        )

    # --------------------------------------------------------------- listing
    def list_models(self) -> list[str]:
        """Model names present in the registry."""
        names = self.files.names(self.root)
        return sorted(n for n in names if NAME_RE.match(n) and self.files.versions(n))

    def list_versions(self, name: str) -> list[VersionInfo]:
        """Every complete version of ``name`` with family, headline metrics and aliases."""
        self._check_name(name)
        versions = self.files.versions(name)
        if not versions:
            raise self._unknown(name)
        aliases = self.aliases(name)
        rows = []
        for v in versions:
            meta = json.loads(self.files.read(self.files.path(name, "versions", v, METADATA_FILE)))
            rows.append(
                VersionInfo(
                    name=name,
                    version=v,
                    family=str(meta.get("family")),
                    created_at=str(meta.get("created_at")),
                    spec_hash=str(meta.get("spec_hash")),
                    metrics=dict(meta.get("metrics", {}).get("headline", {})),
                    aliases=sorted(a for a, av in aliases.items() if av == v),
                )
            )
        return rows

    # --------------------------------------------------------------- register
    def register(
        self,
        trained: TrainedModel,
        name: str | None = None,
        metrics: Metrics | None = None,
        holdout_fingerprint: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> int:
        """Store a trained model as the next version of ``name`` (default: the spec name)."""
        model_name = name or trained.spec.name
        self._check_name(model_name)
        signer = self.keys.signer()  # before any work: a verify-only host cannot register
        with tempfile.TemporaryDirectory(prefix="df-register-") as tmp:
            stage = Path(tmp)
            files = trained.model.save(stage)
            (stage / ENCODER_FILE).write_text(trained.encoder.to_json(), encoding="utf-8")
            (stage / SPEC_FILE).write_text(trained.spec.to_yaml(), encoding="utf-8")
            files += [ENCODER_FILE, SPEC_FILE, METADATA_FILE]
            meta: dict[str, Any] = {
                "name": model_name,
                "version": None,  # filled in once the number is claimed
                "family": trained.family,
                "params": trained.params,
                "seed": trained.seed,
                "fit_info": trained.model.fit_info,
                "tuning": trained.tuning,
                "spec_name": trained.spec.name,
                "spec_hash": trained.spec.hash,
                "feature_names": trained.spec.feature_names,
                "train_fingerprint": trained.train_fingerprint,
                "n_train": trained.n_train,
                "holdout_fingerprint": holdout_fingerprint,
                "metrics": {
                    "headline": metrics.headline() if metrics else {},
                    "full": metrics.to_dict() if metrics else None,
                },
                "library_versions": _library_versions(),
                "git_commit": _git_commit(),
                "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
                "extra": dict(extra or {}),
            }
            return self.files.publish(model_name, stage, files, meta, signer)

    # ---------------------------------------------------------------- resolve
    def aliases(self, name: str) -> dict[str, int]:
        """Current alias -> version mapping of ``name`` (empty if none)."""
        self._check_name(name)
        return self.book.aliases(name)

    def alias_version(self, name: str, alias: str = "champion") -> int | None:
        """Cheap read of the version an alias points to (None if unset); for worker polling."""
        return self.aliases(name).get(alias)

    def resolve(self, name: str, ref: str | int) -> int:
        """Version number for an alias (``champion``), ``latest``, or a version number."""
        self._check_name(name)
        versions = self.files.versions(name)
        if not versions:
            raise self._unknown(name)
        text = str(ref).strip()
        if text.lstrip("v").isdigit():
            version = int(text.lstrip("v"))
            if version not in versions:
                raise UnknownModelError(
                    f"model {name!r} in registry {self.url} has no version {version}; "
                    f"versions: {versions}"
                )
            return version
        if text == "latest":
            return versions[-1]
        aliases = self.aliases(name)
        if text not in aliases:
            raise UnknownModelError(
                f"model {name!r} in registry {self.url} has no alias {text!r}; "
                f"aliases: {aliases or 'none set'}"
            )
        return aliases[text]

    # ------------------------------------------------------------------- load
    def verify(self, name: str, ref: str | int) -> dict[str, bytes]:
        """Check a version's signature and every file against its manifest; the verified bytes."""
        return self.files.verify(name, self.resolve(name, ref), self.keys.verifier())

    def metadata(self, name: str, ref: str | int = "champion") -> dict[str, Any]:
        """Verified metadata.json of a version."""
        meta: dict[str, Any] = json.loads(self.verify(name, ref)[METADATA_FILE])
        return meta

    def load(
        self, name: str, ref: str | int = "champion", device: str | None = None
    ) -> LoadedModel:
        """Verify every sha256, then load encoder, spec and model of a version."""
        version = self.resolve(name, ref)
        blobs = self.files.verify(name, version, self.keys.verifier())
        try:
            spec = spec_from_yaml(blobs[SPEC_FILE].decode("utf-8"), f"{name} v{version}")
        except SpecError as exc:
            raise RegistryIntegrityError(str(exc)) from None
        meta = json.loads(blobs[METADATA_FILE])
        if meta.get("spec_hash") != spec.hash:
            raise RegistryIntegrityError(f"{name} v{version}: spec.yaml hash != metadata")
        encoder = TabularEncoder.from_json(blobs[ENCODER_FILE].decode("utf-8"), spec)
        with tempfile.TemporaryDirectory(prefix="df-load-") as tmp:
            for fname, data in blobs.items():
                (Path(tmp) / fname).write_bytes(data)
            model = ModelFamily.load(tmp, encoder)
        if device is not None or model.device != "cpu":
            model.to(device)
        return LoadedModel(
            name=name,
            version=version,
            family=str(meta["family"]),
            encoder=encoder,
            spec=spec,
            model=model,
            metadata=meta,
        )

    # ---------------------------------------------------------------- aliases
    def history(self, name: str) -> list[AliasEvent]:
        """The alias history of ``name``, oldest first."""
        self._check_name(name)
        return self.book.history(name)

    def promote(
        self,
        name: str,
        version: int | str,
        alias: str = "champion",
        reason: str = "",
        verdict: Mapping[str, Any] | None = None,
    ) -> AliasEvent:
        """Point ``alias`` at ``version`` (number, ``latest`` or another alias); log it."""
        if not _ALIAS_RE.match(alias) or alias == "latest":
            raise RegistryError(f"invalid alias {alias!r}")
        with self.files.lock(name):
            target = self.resolve(name, version)
            return self.book.move(name, alias, target, "promote", reason, verdict)

    def rollback(self, name: str, alias: str = "champion", reason: str = "") -> AliasEvent:
        """Restore the version ``alias`` pointed to before its latest promotion (repeated
        rollbacks walk further back); nothing to roll back to -> RegistryError."""
        with self.files.lock(name):
            if self.aliases(name).get(alias) is None:
                raise UnknownModelError(f"model {name!r} has no alias {alias!r} to roll back")
            previous = self.book.previous(name, alias)
            return self.book.move(name, alias, previous, "rollback", reason or "rollback")

    # ------------------------------------------------------ signing, bundles
    def sign(self, name: str, ref: str | int, force: bool = False) -> SignResult:
        """Sign a version whose files match its manifest: one registered before signing
        existed, or (``force``) one whose signature fails, e.g. made with a retired key.

        Signing vouches for the content: check the version first. Without ``force`` a version
        carrying a signature that fails (another key, a rewritten manifest) is refused.
        """
        signer = self.keys.signer()
        with self.files.lock(name):
            version = self.resolve(name, ref)
            self.files.check_checksums(name, version)
            before = f"{name} v{version}: not signed"
            if SIGNATURE in self.files.names(self.files.path(name, "versions", version)):
                try:
                    self.files.sealed(name, version, signer.verifier())
                except RegistryIntegrityError as exc:
                    if not force:
                        raise RegistryIntegrityError(
                            f"{exc}\n(re-signing a version whose signature fails needs "
                            f"--force; check the version first)"
                        ) from None
                    before = str(exc)
                else:
                    return SignResult(name, version, signer.key_id, False, "signed, this key")
            self.files.seal(name, version, signer)
            self.files.sealed(name, version, signer.verifier())  # read back what we wrote
        return SignResult(name, version, signer.key_id, True, before)

    def add_files(
        self, name: str, version: int, entries: Mapping[str, bytes], replace: bool = False
    ) -> None:
        """Add files (e.g. a runtime variant) to a registered version and re-sign it: the
        version is verified first, then the files are written and the manifest is rewritten
        over every file and signed (training host only). ``replace``: may overwrite files."""
        signer = self.keys.signer()
        with self.files.lock(name):
            current = self.files.verify(name, version, self.keys.verifier())
            for fname in entries:
                if not NAME_RE.match(fname) or fname in SEAL_FILES:
                    raise RegistryError(f"{name} v{version}: invalid file name {fname!r}")
                if fname in current and not replace:
                    raise RegistryError(f"{name} v{version}: {fname} exists already")
            base = self.files.path(name, "versions", version)
            for fname, data in entries.items():
                self.files.write_atomic(f"{base}/{fname}", data)
            self.files.seal(name, version, signer)

    def export_bundle(self, name: str, ref: str | int, out: str | Path) -> int:
        """Write a verified version as one signed bundle (tar) at ``out``; its number."""
        version = self.resolve(name, ref)
        sealed = self.files.sealed(name, version, self.keys.verifier())
        write_bundle(Path(out), sealed)
        return version

    def import_bundle(self, path: str | Path) -> ImportResult:
        """Add the version in a bundle under its own name and number, after checking its
        signature and every checksum; never overwrites a different version."""
        verifier = self.keys.verifier()
        entries = read_bundle(Path(path))
        sealed = check_sealed(f"bundle {path}", entries, dict_reader(entries), verifier)
        name, version = sealed.name, sealed.version
        self._check_name(name)
        with self.files.lock(name):
            created = version not in self.files.versions(name)
            if not created:
                here = self.files.read(self.files.path(name, "versions", version, MANIFEST))
                if here != sealed.seal[MANIFEST]:
                    raise RegistryError(
                        f"{name} v{version} already exists in {self.url} with other content; "
                        f"refused (a version is never overwritten)"
                    )
            elif not self.files.install(sealed):
                raise RegistryError(
                    f"{name} v{version}: its folder already exists in {self.url} (incomplete "
                    f"version?); refused"
                )
            self.files.sealed(name, version, verifier)  # what the registry now holds
        return ImportResult(name, version, verifier.key_id, created)
