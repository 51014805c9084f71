"""The registry's storage: files on a local directory or any fsspec URL, and their integrity.

Atomic writes (temp file + ``os.replace`` locally, one ``put`` per object elsewhere), an
exclusive ``flock`` per model name, versions published whole (staged and renamed locally;
``MANIFEST.json`` written last elsewhere) and checked whole: every file's sha256 against
``MANIFEST.json``, itself checked against ``MANIFEST.json.sha256``, before anything is read.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
from fsspec.implementations.local import LocalFileSystem

__all__ = [
    "MANIFEST",
    "MANIFEST_DIGEST",
    "RegistryError",
    "RegistryFiles",
    "RegistryIntegrityError",
    "UnknownModelError",
    "json_default",
    "sha256",
]

MANIFEST = "MANIFEST.json"
MANIFEST_DIGEST = "MANIFEST.json.sha256"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class RegistryError(RuntimeError):
    """Base class of registry errors."""


class RegistryIntegrityError(RegistryError):
    """An artifact does not match its recorded sha256 (or is missing / unlisted)."""


class UnknownModelError(RegistryError, LookupError):
    """No such model name, version or alias."""


def sha256(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def json_default(value: Any) -> Any:
    """JSON for numpy scalars/arrays and paths in metadata."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class RegistryFiles:
    """Paths, reads, atomic writes, locks and whole-version publish/verify under one root."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.url = url
        fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
        self.fs: fsspec.AbstractFileSystem = fs
        self.local = isinstance(fs, LocalFileSystem)
        self.root = str(Path(root).resolve()) if self.local else str(root).rstrip("/")

    def path(self, *parts: str | int) -> str:
        """``<root>/<part>/...``."""
        return "/".join([self.root, *(str(p) for p in parts)])

    def read(self, path: str) -> bytes:
        """The bytes of one file (FileNotFoundError when absent)."""
        data: bytes = self.fs.cat_file(path)
        return data

    def names(self, path: str) -> list[str]:
        """The entries of a folder (empty when it does not exist)."""
        if not self.fs.exists(path):
            return []
        return [str(p).rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(path, detail=False)]

    def write_atomic(self, path: str, data: bytes) -> None:
        """Replace ``path`` with ``data`` so a reader sees the old or the new file, whole."""
        if not self.local:
            self.fs.pipe_file(path, data)
            return
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

    def append(self, path: str, line: bytes) -> None:
        """Append ``line`` to an append-only file (fsync'd locally)."""
        if self.local:
            with open(path, "ab") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
        else:
            old = self.read(path) if self.fs.exists(path) else b""
            self.fs.pipe_file(path, old + line)

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Exclusive lock on model ``name`` (local filesystems; elsewhere a no-op)."""
        if not self.local:
            yield
            return
        os.makedirs(self.path(name), exist_ok=True)
        with open(self.path(name, ".lock"), "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    # ------------------------------------------------------------------ versions
    def versions(self, name: str) -> list[int]:
        """Complete versions of ``name`` (those with a manifest), ascending."""
        leaves = self.names(self.path(name, "versions"))
        return sorted(
            int(leaf)
            for leaf in leaves
            if leaf.isdigit() and self.fs.exists(self.path(name, "versions", leaf, MANIFEST))
        )

    def publish(self, name: str, stage: Path, files: list[str], meta: dict[str, Any]) -> int:
        """Publish the staged ``files`` + ``metadata.json`` as the next version of ``name``."""
        versions_dir = self.path(name, "versions")
        for attempt in range(100):
            version = max(self.versions(name), default=0) + 1 + attempt
            meta["version"] = version
            data = json.dumps(meta, indent=1, sort_keys=True, default=json_default).encode()
            (stage / "metadata.json").write_bytes(data)
            digests = {f: sha256((stage / f).read_bytes()) for f in sorted(set(files))}
            manifest = json.dumps({"files": digests}, indent=1, sort_keys=True).encode()
            if self.local:
                os.makedirs(versions_dir, exist_ok=True)
                staging = Path(versions_dir) / f".staging-{uuid.uuid4().hex}"
                shutil.copytree(stage, staging)
                (staging / MANIFEST).write_bytes(manifest)
                (staging / MANIFEST_DIGEST).write_text(sha256(manifest) + "\n")
                try:
                    os.rename(staging, Path(versions_dir) / str(version))
                except OSError:  # another writer claimed this number: try the next one
                    shutil.rmtree(staging, ignore_errors=True)
                    continue
                return version
            target = self.path(name, "versions", version)
            if self.fs.exists(target):
                continue
            for f in sorted(set(files)):
                self.fs.pipe_file(f"{target}/{f}", (stage / f).read_bytes())
            self.fs.pipe_file(f"{target}/{MANIFEST_DIGEST}", (sha256(manifest) + "\n").encode())
            self.fs.pipe_file(f"{target}/{MANIFEST}", manifest)
            return version
        raise RegistryError(f"could not claim a version number for {name!r}")

    def verify(self, name: str, version: int) -> dict[str, bytes]:
        """Every file of a version, each checked against the manifest; the verified bytes."""
        base = self.path(name, "versions", version)
        where = f"{name} v{version}"
        try:
            manifest_bytes = self.read(f"{base}/{MANIFEST}")
            recorded = self.read(f"{base}/{MANIFEST_DIGEST}").decode("ascii", "replace").strip()
        except FileNotFoundError as exc:
            raise RegistryIntegrityError(f"{where}: missing {Path(str(exc)).name}") from None
        if sha256(manifest_bytes) != recorded:
            raise RegistryIntegrityError(
                f"{where}: {MANIFEST} does not match {MANIFEST_DIGEST} (file changed)"
            )
        try:
            digests: dict[str, str] = json.loads(manifest_bytes)["files"]
        except (ValueError, KeyError, TypeError):
            raise RegistryIntegrityError(f"{where}: {MANIFEST} is malformed") from None
        present = set(self.names(base)) - {MANIFEST, MANIFEST_DIGEST}
        unlisted = sorted(present - set(digests))
        if unlisted:
            raise RegistryIntegrityError(f"{where}: file(s) not in {MANIFEST}: {unlisted}")
        return {
            fname: self._checked(base, fname, want, where)
            for fname, want in sorted(digests.items())
        }

    def _checked(self, base: str, fname: str, expected: str, where: str) -> bytes:
        if "/" in fname or fname.startswith("."):
            raise RegistryIntegrityError(f"{where}: bad file name in {MANIFEST}: {fname!r}")
        try:
            data = self.read(f"{base}/{fname}")
        except FileNotFoundError:
            raise RegistryIntegrityError(f"{where}: {fname} is missing") from None
        actual = sha256(data)
        if actual != expected:
            raise RegistryIntegrityError(
                f"{where}: sha256 mismatch for {fname} "
                f"(expected {expected[:16]}..., got {actual[:16]}...): artifact was modified"
            )
        return data
