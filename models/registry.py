"""Versioned model registry on a local directory or any fsspec URL.

Layout::

    <root>/<name>/versions/<N>/params.json, model.pt|model.skops, encoder.json, spec.yaml,
                               metadata.json, MANIFEST.json, MANIFEST.json.sha256
    <root>/<name>/aliases.json          {"champion": 3, "challenger": 4}
    <root>/<name>/alias_history.jsonl   one JSON object per alias move (append-only)

Every load checks the sha256 of every file against ``MANIFEST.json`` (itself checked against
``MANIFEST.json.sha256``) before anything is deserialised; a mismatch, a missing file or an
unlisted file raises :class:`RegistryIntegrityError` naming the file. Model files are never
pickles: torch weights load with ``weights_only=True``, scikit-learn via skops allow-lists.

On a local filesystem new versions are staged and renamed into place, alias files are replaced
atomically (temp file + ``os.replace``) and alias moves hold an exclusive ``flock``. On other
fsspec stores each file is a single ``put`` (atomic per object on object stores); version
numbers there are claimed optimistically (MANIFEST written last marks a version complete).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import numpy.typing as npt
import pandas as pd
from fsspec.implementations.local import LocalFileSystem

from models import paths
from models.data import features_from_records
from models.encoding import EncodedBatch, TabularEncoder
from models.family import ModelFamily
from models.metrics import Metrics
from models.spec import FeatureSpec, SpecError, spec_from_yaml
from models.training import TrainedModel

__all__ = [
    "REGISTRY_URL_ENV",
    "AliasEvent",
    "LoadedModel",
    "ModelRegistry",
    "RegistryError",
    "RegistryIntegrityError",
    "UnknownModelError",
    "VersionInfo",
    "default_registry_url",
]

REGISTRY_URL_ENV = "DECISIONFLOW_REGISTRY_URL"
MANIFEST = "MANIFEST.json"
MANIFEST_DIGEST = "MANIFEST.json.sha256"
ENCODER_FILE = "encoder.json"
SPEC_FILE = "spec.yaml"
METADATA_FILE = "metadata.json"
ALIASES_FILE = "aliases.json"
HISTORY_FILE = "alias_history.jsonl"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_ALIAS_RE = re.compile(r"^[a-z][a-z0-9_-]*$")


class RegistryError(RuntimeError):
    """Base class of registry errors."""


class RegistryIntegrityError(RegistryError):
    """An artifact does not match its recorded sha256 (or is missing / unlisted)."""


class UnknownModelError(RegistryError, LookupError):
    """No such model name, version or alias."""


def default_registry_url() -> str:
    """``$DECISIONFLOW_REGISTRY_URL`` if set, else ``registry/`` in the home (models.paths)."""
    return paths.registry_url()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


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


@dataclass(frozen=True)
class AliasEvent:
    """One alias move, as stored in the append-only history."""

    ts: str
    alias: str
    from_version: int | None
    to_version: int | None
    action: str
    reason: str
    verdict: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return {
            "ts": self.ts,
            "alias": self.alias,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "action": self.action,
            "reason": self.reason,
            "verdict": self.verdict,
        }


@dataclass
class LoadedModel:
    """A verified model from the registry, ready to score raw frames."""

    name: str
    version: int
    family: str
    encoder: TabularEncoder
    spec: FeatureSpec
    model: ModelFamily
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        """Raw feature names (columns of :meth:`explain`)."""
        return self.spec.feature_names

    @property
    def device(self) -> str:
        """Device the model computes on."""
        return self.model.device

    def to(self, device: str | None = None) -> LoadedModel:
        """Move the model (torch: default cuda if available); returns self."""
        self.model.to(device)
        return self

    def encode(self, df: pd.DataFrame) -> EncodedBatch:
        """Encode a raw frame with the training-time encoder."""
        return self.encoder.transform(df)

    def score(self, df: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Positive-class probability per row of a raw frame."""
        return self.model.predict_proba(self.encoder.transform(df))

    def explain(self, df: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Per-raw-feature contributions (n_rows, n_features), columns = ``feature_names``."""
        return self.model.contributions(self.encoder.transform(df))

    def score_explain(
        self, df: pd.DataFrame
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """``(score(df), explain(df))`` with the frame encoded once, not twice.

        The same arrays (values, dtypes, shapes) as the two separate calls; for callers that
        always want both, such as the decision engine.
        """
        batch = self.encoder.transform(df)
        return self.model.predict_proba(batch), self.model.contributions(batch)

    def score_records(self, records: Sequence[Mapping[str, Any]]) -> npt.NDArray[np.float64]:
        """Score event feature dicts (missing keys -> NaN, handled by the encoder)."""
        return self.score(features_from_records(records, self.spec))


class ModelRegistry:
    """Versioned artifacts + aliases + alias history under one root (path or fsspec URL)."""

    def __init__(
        self, url: str | Path | None = None, storage_options: Mapping[str, Any] | None = None
    ) -> None:
        self.url = str(url) if url is not None else default_registry_url()
        fs, root = fsspec.core.url_to_fs(self.url, **dict(storage_options or {}))
        self.fs: fsspec.AbstractFileSystem = fs
        self.local = isinstance(fs, LocalFileSystem)
        self.root = str(Path(root).resolve()) if self.local else str(root).rstrip("/")

    # ------------------------------------------------------------------ paths
    def _p(self, *parts: str | int) -> str:
        return "/".join([self.root, *(str(p) for p in parts)])

    @staticmethod
    def _check_name(name: str) -> None:
        if not _NAME_RE.match(name):
            raise RegistryError(f"invalid model name {name!r} (letters, digits, _ . - only)")

    def _read(self, path: str) -> bytes:
        data: bytes = self.fs.cat_file(path)
        return data

    def _write_atomic(self, path: str, data: bytes) -> None:
        if self.local:
            directory = os.path.dirname(path)
            os.makedirs(directory, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        else:
            self.fs.pipe_file(path, data)

    @contextlib.contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        if not self.local:
            yield
            return
        os.makedirs(self._p(name), exist_ok=True)
        with open(self._p(name, ".lock"), "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    # --------------------------------------------------------------- listing
    def list_models(self) -> list[str]:
        """Model names present in the registry."""
        if not self.fs.exists(self.root):
            return []
        names = [p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self.root, detail=False)]
        return sorted(n for n in names if _NAME_RE.match(n) and self._versions(n))

    def _versions(self, name: str) -> list[int]:
        base = self._p(name, "versions")
        if not self.fs.exists(base):
            return []
        out = []
        for path in self.fs.ls(base, detail=False):
            leaf = str(path).rstrip("/").rsplit("/", 1)[-1]
            if leaf.isdigit() and self.fs.exists(self._p(name, "versions", leaf, MANIFEST)):
                out.append(int(leaf))
        return sorted(out)

    def list_versions(self, name: str) -> list[VersionInfo]:
        """Every complete version of ``name`` with family, headline metrics and aliases."""
        self._check_name(name)
        versions = self._versions(name)
        if not versions:
            raise UnknownModelError(
                f"unknown model {name!r} in registry {self.url}; models: {self.list_models()}"
            )
        aliases = self.aliases(name)
        rows = []
        for v in versions:
            meta = json.loads(self._read(self._p(name, "versions", v, METADATA_FILE)))
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
        with tempfile.TemporaryDirectory(prefix="df-register-") as tmp:
            stage = Path(tmp)
            files = trained.model.save(stage)
            (stage / ENCODER_FILE).write_text(trained.encoder.to_json(), encoding="utf-8")
            (stage / SPEC_FILE).write_text(trained.spec.to_yaml(), encoding="utf-8")
            files += [ENCODER_FILE, SPEC_FILE, METADATA_FILE]
            meta: dict[str, Any] = {
                "name": model_name,
                "version": None,  # filled below once the number is claimed
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
                "created_at": _now(),
                "extra": dict(extra or {}),
            }
            return self._publish(model_name, stage, files, meta)

    def _publish(self, name: str, stage: Path, files: list[str], meta: dict[str, Any]) -> int:
        versions_dir = self._p(name, "versions")
        for attempt in range(100):
            version = max(self._versions(name), default=0) + 1 + attempt
            meta["version"] = version
            data = json.dumps(meta, indent=1, sort_keys=True, default=_json_default).encode()
            (stage / METADATA_FILE).write_bytes(data)
            digests = {f: _sha256((stage / f).read_bytes()) for f in sorted(set(files))}
            manifest = json.dumps({"files": digests}, indent=1, sort_keys=True).encode()
            if self.local:
                os.makedirs(versions_dir, exist_ok=True)
                staging = Path(versions_dir) / f".staging-{uuid.uuid4().hex}"
                shutil.copytree(stage, staging)
                (staging / MANIFEST).write_bytes(manifest)
                (staging / MANIFEST_DIGEST).write_text(_sha256(manifest) + "\n")
                try:
                    os.rename(staging, Path(versions_dir) / str(version))
                except OSError:  # another writer claimed this number: try the next one
                    shutil.rmtree(staging, ignore_errors=True)
                    continue
                return version
            target = self._p(name, "versions", version)
            if self.fs.exists(target):
                continue
            for f in sorted(set(files)):
                self.fs.pipe_file(f"{target}/{f}", (stage / f).read_bytes())
            self.fs.pipe_file(f"{target}/{MANIFEST_DIGEST}", (_sha256(manifest) + "\n").encode())
            self.fs.pipe_file(f"{target}/{MANIFEST}", manifest)
            return version
        raise RegistryError(f"could not claim a version number for {name!r}")

    # ---------------------------------------------------------------- resolve
    def aliases(self, name: str) -> dict[str, int]:
        """Current alias -> version mapping of ``name`` (empty if none)."""
        self._check_name(name)
        path = self._p(name, ALIASES_FILE)
        try:
            raw = json.loads(self._read(path))
        except FileNotFoundError:
            return {}
        return {str(k): int(v) for k, v in raw.items() if v is not None}

    def alias_version(self, name: str, alias: str = "champion") -> int | None:
        """Cheap read of the version an alias points to (None if unset); for worker polling."""
        return self.aliases(name).get(alias)

    def resolve(self, name: str, ref: str | int) -> int:
        """Version number for an alias (``champion``), ``latest``, or a version number."""
        self._check_name(name)
        versions = self._versions(name)
        if not versions:
            raise UnknownModelError(
                f"unknown model {name!r} in registry {self.url}; models: {self.list_models()}"
            )
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
        """Check every file of a version against its manifest; return the verified bytes."""
        version = self.resolve(name, ref)
        base = self._p(name, "versions", version)
        where = f"{name} v{version}"
        try:
            manifest_bytes = self._read(f"{base}/{MANIFEST}")
            recorded = self._read(f"{base}/{MANIFEST_DIGEST}").decode("ascii", "replace").strip()
        except FileNotFoundError as exc:
            raise RegistryIntegrityError(f"{where}: missing {Path(str(exc)).name}") from None
        if _sha256(manifest_bytes) != recorded:
            raise RegistryIntegrityError(
                f"{where}: {MANIFEST} does not match {MANIFEST_DIGEST} (file changed)"
            )
        try:
            digests: dict[str, str] = json.loads(manifest_bytes)["files"]
        except (ValueError, KeyError, TypeError):
            raise RegistryIntegrityError(f"{where}: {MANIFEST} is malformed") from None
        present = {
            str(p).rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(base, detail=False)
        } - {MANIFEST, MANIFEST_DIGEST}
        unlisted = sorted(present - set(digests))
        if unlisted:
            raise RegistryIntegrityError(f"{where}: file(s) not in {MANIFEST}: {unlisted}")
        blobs: dict[str, bytes] = {}
        for fname, expected in sorted(digests.items()):
            if "/" in fname or fname.startswith("."):
                raise RegistryIntegrityError(f"{where}: bad file name in {MANIFEST}: {fname!r}")
            try:
                data = self._read(f"{base}/{fname}")
            except FileNotFoundError:
                raise RegistryIntegrityError(f"{where}: {fname} is missing") from None
            actual = _sha256(data)
            if actual != expected:
                raise RegistryIntegrityError(
                    f"{where}: sha256 mismatch for {fname} "
                    f"(expected {expected[:16]}..., got {actual[:16]}...): artifact was modified"
                )
            blobs[fname] = data
        return blobs

    def metadata(self, name: str, ref: str | int = "champion") -> dict[str, Any]:
        """Verified metadata.json of a version."""
        meta: dict[str, Any] = json.loads(self.verify(name, ref)[METADATA_FILE])
        return meta

    def load(
        self, name: str, ref: str | int = "champion", device: str | None = None
    ) -> LoadedModel:
        """Verify every sha256, then load encoder, spec and model of a version."""
        version = self.resolve(name, ref)
        blobs = self.verify(name, version)
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
        try:
            text = self._read(self._p(name, HISTORY_FILE)).decode("utf-8")
        except FileNotFoundError:
            return []
        events = []
        for line in text.splitlines():
            if line.strip():
                events.append(AliasEvent(**json.loads(line)))
        return events

    def _append_history(self, name: str, event: AliasEvent) -> None:
        line = (json.dumps(event.to_dict(), sort_keys=True, default=_json_default) + "\n").encode()
        path = self._p(name, HISTORY_FILE)
        if self.local:
            with open(path, "ab") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
        else:
            old = self._read(path) if self.fs.exists(path) else b""
            self.fs.pipe_file(path, old + line)

    def _set_alias(
        self,
        name: str,
        alias: str,
        version: int | None,
        action: str,
        reason: str,
        verdict: Mapping[str, Any] | None,
    ) -> AliasEvent:
        aliases = self.aliases(name)
        event = AliasEvent(
            ts=_now(),
            alias=alias,
            from_version=aliases.get(alias),
            to_version=version,
            action=action,
            reason=reason,
            verdict=dict(verdict) if verdict is not None else None,
        )
        if version is None:
            aliases.pop(alias, None)
        else:
            aliases[alias] = version
        payload = json.dumps(dict(sorted(aliases.items())), indent=1).encode()
        self._write_atomic(self._p(name, ALIASES_FILE), payload)
        self._append_history(name, event)
        return event

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
        with self._lock(name):
            target = self.resolve(name, version)
            return self._set_alias(name, alias, target, "promote", reason, verdict)

    def rollback(self, name: str, alias: str = "champion", reason: str = "") -> AliasEvent:
        """Restore the version ``alias`` pointed to before its latest promotion.

        The history is replayed as a stack (promote pushes the replaced version, rollback pops),
        so repeated rollbacks walk further back. Nothing to roll back to -> RegistryError.
        """
        with self._lock(name):
            current = self.aliases(name).get(alias)
            if current is None:
                raise UnknownModelError(f"model {name!r} has no alias {alias!r} to roll back")
            stack: list[int] = []
            for event in self.history(name):
                if event.alias != alias:
                    continue
                if event.action == "promote" and event.from_version is not None:
                    if event.from_version != event.to_version:
                        stack.append(event.from_version)
                elif event.action == "rollback" and stack:
                    stack.pop()
            if not stack:
                raise RegistryError(
                    f"model {name!r}: alias {alias!r} has no previous version to roll back to"
                )
            return self._set_alias(name, alias, stack[-1], "rollback", reason or "rollback", None)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
