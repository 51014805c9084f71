"""The registry's storage: files on a local directory or any fsspec URL, and their integrity.

Atomic writes (temp file + ``os.replace`` locally, one ``put`` per object elsewhere), an
exclusive ``flock`` per model name, versions published whole (staged and renamed locally;
``MANIFEST.json`` written last elsewhere) and checked whole before anything is deserialised:
``MANIFEST.json`` against ``MANIFEST.json.sha256`` (accidents), its Ed25519 signature in
``MANIFEST.json.sig`` (tampering: :mod:`models.signing`), the name and version it was signed
for, then every file's sha256 against it (no file missing, none unlisted).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import uuid
import zlib
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fsspec
import numpy as np
from fsspec.implementations.local import LocalFileSystem

if TYPE_CHECKING:
    from models.signing import Signer, Verifier

__all__ = [
    "MANIFEST",
    "MANIFEST_DIGEST",
    "SEAL_FILES",
    "SIGNATURE",
    "RegistryError",
    "RegistryFiles",
    "RegistryIntegrityError",
    "SealedVersion",
    "UnknownModelError",
    "check_checksums",
    "check_sealed",
    "dict_reader",
    "json_default",
    "make_seal",
    "manifest_bytes",
    "read_bundle",
    "sha256",
    "write_bundle",
]

MANIFEST = "MANIFEST.json"
MANIFEST_DIGEST = "MANIFEST.json.sha256"
SIGNATURE = "MANIFEST.json.sig"
SEAL_FILES = frozenset({MANIFEST, MANIFEST_DIGEST, SIGNATURE})
MANIFEST_FORMAT = 2  # 2: signed, names its model and version; 1 (no "format"): checksums only
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
MAX_BUNDLE_BYTES = 4 << 30
MAX_BUNDLE_FILES = 1000


class RegistryError(RuntimeError):
    """Base class of registry errors."""


class RegistryIntegrityError(RegistryError):
    """A version fails its integrity check: a file does not match its sha256 (or is missing or
    unlisted), the manifest's signature is missing, invalid or made with another key, or the
    manifest was signed for another name or version."""


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


@dataclass(frozen=True)
class SealedVersion:
    """A version's verified files, and the manifest, digest and signature sealing them."""

    name: str
    version: int
    files: dict[str, bytes]
    seal: dict[str, bytes]  # MANIFEST, MANIFEST_DIGEST, SIGNATURE

    def entries(self) -> dict[str, bytes]:
        """Every file of the version folder: artifacts and seal."""
        return {**self.files, **self.seal}


def manifest_bytes(name: str, version: int, digests: Mapping[str, str]) -> bytes:
    """The canonical manifest (sorted keys, one-space indent, UTF-8) the signature covers."""
    doc = {"format": MANIFEST_FORMAT, "name": name, "version": version, "files": dict(digests)}
    return json.dumps(doc, indent=1, sort_keys=True).encode()


def make_seal(
    name: str, version: int, digests: Mapping[str, str], signer: Signer
) -> dict[str, bytes]:
    """``MANIFEST.json`` over ``digests``, its ``.sha256`` and its signature."""
    manifest = manifest_bytes(name, version, digests)
    return {
        MANIFEST: manifest,
        MANIFEST_DIGEST: (sha256(manifest) + "\n").encode(),
        SIGNATURE: signer.sign(manifest),
    }


Reader = Callable[[str], bytes]  # file name -> bytes; FileNotFoundError when absent


def _sign_hint(expected: tuple[str, int] | None) -> str:
    name, version = expected or ("NAME", "VERSION")
    return (
        f"versions registered before signing are refused: check this one, then sign it with "
        f"`decisionflow models sign {name} {version}` on the training host"
    )


def _read_manifest(where: str, read: Reader) -> tuple[bytes, bytes]:
    """The manifest and its ``.sha256`` file, checked against each other (catches accidents)."""
    try:
        manifest = read(MANIFEST)
        digest = read(MANIFEST_DIGEST)
    except FileNotFoundError as exc:
        raise RegistryIntegrityError(f"{where}: missing {Path(str(exc)).name}") from None
    if sha256(manifest) != digest.decode("ascii", "replace").strip():
        raise RegistryIntegrityError(
            f"{where}: {MANIFEST} does not match {MANIFEST_DIGEST} (file changed)"
        )
    return manifest, digest


def _manifest_doc(where: str, manifest: bytes) -> tuple[dict[str, Any], dict[str, str]]:
    """The manifest as JSON and its ``files`` (name -> sha256)."""
    try:
        doc = json.loads(manifest)
        digests = doc["files"]
        if not isinstance(digests, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in digests.items()
        ):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise RegistryIntegrityError(f"{where}: {MANIFEST} is malformed") from None
    return doc, digests


def _check_names_version(
    where: str, doc: dict[str, Any], expected: tuple[str, int] | None
) -> tuple[str, int]:
    """The (name, version) a signed manifest was made for; must be ``expected`` if given."""
    name, version = doc.get("name"), doc.get("version")
    if (
        doc.get("format") != MANIFEST_FORMAT
        or not isinstance(name, str)
        or type(version) is not int
    ):
        raise RegistryIntegrityError(f"{where}: {MANIFEST} does not name its model and version")
    if expected is not None and (name, version) != expected:
        raise RegistryIntegrityError(
            f"{where}: {MANIFEST} was signed for {name} v{version}, not {expected[0]} "
            f"v{expected[1]}: a version was copied over another, refused"
        )
    return name, version


def _check_files(
    where: str, names: Collection[str], read: Reader, digests: Mapping[str, str]
) -> dict[str, bytes]:
    """Every listed file, its sha256 checked; no file missing and none unlisted."""
    unlisted = sorted(set(names) - SEAL_FILES - set(digests))
    if unlisted:
        raise RegistryIntegrityError(f"{where}: file(s) not in {MANIFEST}: {unlisted}")
    checked = {}
    for fname, expected in sorted(digests.items()):
        if not NAME_RE.match(fname) or fname in SEAL_FILES:
            raise RegistryIntegrityError(f"{where}: bad file name in {MANIFEST}: {fname!r}")
        try:
            data = read(fname)
        except FileNotFoundError:
            raise RegistryIntegrityError(f"{where}: {fname} is missing") from None
        actual = sha256(data)
        if actual != expected:
            raise RegistryIntegrityError(
                f"{where}: sha256 mismatch for {fname} "
                f"(expected {expected[:16]}..., got {actual[:16]}...): artifact was modified"
            )
        checked[fname] = data
    return checked


def check_sealed(
    where: str,
    names: Collection[str],
    read: Reader,
    verifier: Verifier,
    expected: tuple[str, int] | None = None,
) -> SealedVersion:
    """Check one version's files (``names`` present, read by ``read``) against its signed
    manifest; the verified files. ``expected``: the (name, version) it must be signed for.

    Order: manifest digest, signature (a missing one is refused too), manifest content, every
    file's sha256. Nothing is parsed as a model here: callers deserialise only what this
    returns. Any failure raises :class:`RegistryIntegrityError` naming ``where``.
    """
    manifest, digest = _read_manifest(where, read)
    try:
        signature = read(SIGNATURE)
    except FileNotFoundError:
        raise RegistryIntegrityError(
            f"{where}: not signed (no {SIGNATURE}); {_sign_hint(expected)}"
        ) from None
    verifier.check(where, manifest, signature)
    doc, digests = _manifest_doc(where, manifest)
    name, version = _check_names_version(where, doc, expected)
    files = _check_files(where, names, read, digests)
    seal = {MANIFEST: manifest, MANIFEST_DIGEST: digest, SIGNATURE: signature}
    return SealedVersion(name, version, files, seal)


def check_checksums(
    where: str, names: Collection[str], read: Reader, expected: tuple[str, int]
) -> dict[str, bytes]:
    """The checks of :func:`check_sealed` except the signature (signed or not): for signing a
    version registered before signing existed, or re-signing after a key rotation."""
    manifest, _ = _read_manifest(where, read)
    doc, digests = _manifest_doc(where, manifest)
    if "format" in doc:  # a manifest of today names its version: it must be this one
        _check_names_version(where, doc, expected)
    return _check_files(where, names, read, digests)


def dict_reader(entries: Mapping[str, bytes]) -> Reader:
    """A :data:`Reader` over files held in memory."""

    def read(fname: str) -> bytes:
        try:
            return entries[fname]
        except KeyError:
            raise FileNotFoundError(fname) from None

    return read


def write_bundle(path: Path, sealed: SealedVersion) -> None:
    """One version as a tar (gzip'd for ``.gz``/``.tgz``) of plain file names, written whole."""
    gz = path.name.endswith((".gz", ".tgz"))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    try:
        with tarfile.open(tmp, "w:gz") if gz else tarfile.open(tmp, "w") as tar:
            for fname, data in sorted(sealed.entries().items()):
                info = tarfile.TarInfo(fname)
                info.size, info.mode, info.mtime = len(data), 0o644, 0
                tar.addfile(info, io.BytesIO(data))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _bundle_member(where: str, member: tarfile.TarInfo, seen: Mapping[str, bytes]) -> None:
    if not member.isreg():
        raise RegistryIntegrityError(
            f"{where}: refused {member.name!r}: not a regular file (links, devices and folders "
            f"are refused)"
        )
    if not NAME_RE.match(member.name):
        raise RegistryIntegrityError(
            f"{where}: refused {member.name!r}: a bundle holds plain file names only (no "
            f"folders, absolute paths or '..')"
        )
    if member.name in seen:
        raise RegistryIntegrityError(f"{where}: {member.name!r} appears twice")
    if len(seen) >= MAX_BUNDLE_FILES:
        raise RegistryIntegrityError(f"{where}: more than {MAX_BUNDLE_FILES} files")


def read_bundle(path: Path, max_bytes: int = MAX_BUNDLE_BYTES) -> dict[str, bytes]:
    """The files of a bundle, read into memory (nothing is extracted to disk); any member that
    is not a plain regular file (path traversal, links) is refused. Not verified yet: pass the
    result to :func:`check_sealed`."""
    where = f"bundle {path}"
    if not path.is_file():
        raise RegistryError(f"{where}: no such file")
    entries: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                _bundle_member(where, member, entries)
                total += member.size
                if total > max_bytes:
                    raise RegistryIntegrityError(f"{where}: larger than {max_bytes} bytes")
                fh = tar.extractfile(member)
                entries[member.name] = fh.read() if fh is not None else b""
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise RegistryIntegrityError(f"{where}: not a readable tar archive ({exc})") from None
    return entries


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

    def publish(
        self, name: str, stage: Path, files: list[str], meta: dict[str, Any], signer: Signer
    ) -> int:
        """Publish the staged ``files`` + ``metadata.json`` as the next version of ``name``,
        sealed by a manifest signed with ``signer``."""
        names = sorted(set(files))
        for attempt in range(100):
            version = max(self.versions(name), default=0) + 1 + attempt
            meta["version"] = version
            data = json.dumps(meta, indent=1, sort_keys=True, default=json_default).encode()
            (stage / "metadata.json").write_bytes(data)
            blobs = {f: (stage / f).read_bytes() for f in names}
            seal = make_seal(name, version, {f: sha256(b) for f, b in blobs.items()}, signer)
            if self._put_version(name, version, {**blobs, **seal}):
                return version
        raise RegistryError(f"could not claim a version number for {name!r}")

    def install(self, sealed: SealedVersion) -> bool:
        """Write a verified version at its own number; False if that number is taken."""
        return self._put_version(sealed.name, sealed.version, sealed.entries())

    def _put_version(self, name: str, version: int, entries: Mapping[str, bytes]) -> bool:
        """Write a whole version folder unless ``version`` exists (False then)."""
        versions_dir = self.path(name, "versions")
        target = self.path(name, "versions", version)
        if self.local:
            os.makedirs(versions_dir, exist_ok=True)
            staging = Path(versions_dir) / f".staging-{uuid.uuid4().hex}"
            try:
                staging.mkdir()
                for fname, data in entries.items():
                    (staging / fname).write_bytes(data)
                os.rename(staging, target)  # fails if another writer has this number
            except FileExistsError:
                shutil.rmtree(staging, ignore_errors=True)
                return False
            except OSError as exc:
                shutil.rmtree(staging, ignore_errors=True)
                if os.path.exists(target):
                    return False
                raise RegistryError(f"could not write {name} v{version}: {exc}") from exc
            return True
        if self.fs.exists(target):
            return False
        for fname in sorted(set(entries) - {MANIFEST}):
            self.fs.pipe_file(f"{target}/{fname}", entries[fname])
        self.fs.pipe_file(f"{target}/{MANIFEST}", entries[MANIFEST])  # last: complete
        return True

    def seal(self, name: str, version: int, signer: Signer) -> SealedVersion:
        """(Re)write the manifest over every file now in the version folder, and sign it.

        The one way a version's file set changes after publishing (e.g. adding a runtime
        variant): under :meth:`lock`, verify the version, write the new file, then seal.
        Sealing trusts whatever the folder holds now, so never seal an unverified version.
        """
        base = self.path(name, "versions", version)
        where = f"{name} v{version}"
        names = sorted(set(self.names(base)) - SEAL_FILES)
        if not names:
            raise UnknownModelError(f"{where}: no such version folder in {self.url}")
        stray = [n for n in names if not NAME_RE.match(n)]
        if stray:
            raise RegistryError(f"{where}: will not seal unexpected file(s) {stray}")
        files = {n: self.read(f"{base}/{n}") for n in names}
        seal = make_seal(name, version, {n: sha256(d) for n, d in files.items()}, signer)
        for fname in (SIGNATURE, MANIFEST_DIGEST, MANIFEST):  # the manifest last
            self.write_atomic(f"{base}/{fname}", seal[fname])
        return SealedVersion(name, version, files, seal)

    def _reader(self, base: str) -> Reader:
        return lambda fname: self.read(f"{base}/{fname}")

    def sealed(self, name: str, version: int, verifier: Verifier) -> SealedVersion:
        """A version whose signature and every checksum passed (:func:`check_sealed`)."""
        base = self.path(name, "versions", version)
        return check_sealed(
            f"{name} v{version}",
            self.names(base),
            self._reader(base),
            verifier,
            expected=(name, version),
        )

    def verify(self, name: str, version: int, verifier: Verifier) -> dict[str, bytes]:
        """Every file of a version, checked against the signed manifest; the verified bytes."""
        return self.sealed(name, version, verifier).files

    def check_checksums(self, name: str, version: int) -> dict[str, bytes]:
        """A version's files checked against its manifest, the signature not considered."""
        base = self.path(name, "versions", version)
        return check_checksums(
            f"{name} v{version}", self.names(base), self._reader(base), (name, version)
        )
