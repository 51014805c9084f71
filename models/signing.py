"""Ed25519 signatures over registry manifests: who may publish a model, and who checks it.

The training side (the CLI, Airflow) signs each version's ``MANIFEST.json`` with a private key;
workers verify with the public key only, so a serving host never holds the signing secret. The
manifest lists every file's sha256, so one signature check covers every byte of a version.

Keys are PEM files (PKCS#8 private key, SubjectPublicKeyInfo public key, as written by
``openssl genpkey -algorithm ed25519`` / ``openssl pkey -pubout`` or ``decisionflow models
keygen``), configured by path: ``DECISIONFLOW_REGISTRY__SIGNING_KEY`` (training host only) and
``DECISIONFLOW_REGISTRY__VERIFY_KEY`` (every host that loads models). With neither set (a dev
checkout), a key pair is generated once under ``<home>/keys/`` (:mod:`models.paths`; the private
key file is mode 0600) so ``make demo`` and the tests need no setup. Key material is never
logged; a key is named by its id (the first 16 hex digits of the public key's sha256).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from models import paths
from models.registry_files import MANIFEST, SIGNATURE, RegistryError, RegistryIntegrityError

__all__ = [
    "ALGORITHM",
    "DEV_SIGNING_KEY",
    "DEV_VERIFY_KEY",
    "SIGNING_KEY_ENV",
    "VERIFY_KEY_ENV",
    "RegistryKeyError",
    "RegistryKeys",
    "Signer",
    "Verifier",
    "generate_key_pair",
    "key_id",
]

log = logging.getLogger(__name__)

SIGNING_KEY_ENV = "DECISIONFLOW_REGISTRY__SIGNING_KEY"
VERIFY_KEY_ENV = "DECISIONFLOW_REGISTRY__VERIFY_KEY"
DEV_SIGNING_KEY = "registry_signing.pem"
DEV_VERIFY_KEY = "registry_verify.pem"
ALGORITHM = "ed25519"
# domain separation: a signature made by this key for anything else never passes as a manifest's
_CONTEXT = b"decisionflow-registry-manifest-v1\n"


class RegistryKeyError(RegistryError):
    """A signing or verify key is not configured, unreadable, or not an Ed25519 key."""


def key_id(public: Ed25519PublicKey) -> str:
    """Short public fingerprint of a key (safe to log and show)."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class Signer:
    """Signs manifests with a private key (which it never shows)."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public = key.public_key()
        self.key_id = key_id(self.public)

    def __repr__(self) -> str:
        return f"Signer(key_id={self.key_id!r})"

    def verifier(self) -> Verifier:
        """A verifier for this signer's own signatures."""
        return Verifier(self.public, f"the signing key (id {self.key_id})")

    def sign(self, manifest: bytes) -> bytes:
        """The content of ``MANIFEST.json.sig`` for these exact manifest bytes."""
        signature = self._key.sign(_CONTEXT + manifest)
        doc = {
            "algorithm": ALGORITHM,
            "key_id": self.key_id,
            "signature": base64.b64encode(signature).decode("ascii"),
        }
        return json.dumps(doc, indent=1, sort_keys=True).encode() + b"\n"


class Verifier:
    """Checks manifest signatures against one trusted public key."""

    def __init__(self, key: Ed25519PublicKey, source: str) -> None:
        self._key = key
        self.key_id = key_id(key)
        self.source = source  # where the key came from, for error messages

    def __repr__(self) -> str:
        return f"Verifier(key_id={self.key_id!r})"

    def check(self, where: str, manifest: bytes, signature_file: bytes) -> None:
        """Raise :class:`RegistryIntegrityError` unless ``signature_file`` is this key's
        signature of exactly ``manifest``."""
        try:
            doc = json.loads(signature_file)
            algorithm, signer, encoded = doc["algorithm"], doc["key_id"], doc["signature"]
            signature = base64.b64decode(encoded, validate=True)
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise RegistryIntegrityError(f"{where}: {SIGNATURE} is malformed") from None
        if algorithm != ALGORITHM:
            raise RegistryIntegrityError(
                f"{where}: {SIGNATURE} uses algorithm {algorithm!r}, only {ALGORITHM} is accepted"
            )
        if signer != self.key_id:
            raise RegistryIntegrityError(
                f"{where}: {SIGNATURE} names key {signer!r}, but this host trusts key "
                f"{self.key_id} ({self.source}): signed with another key, refused"
            )
        try:
            self._key.verify(signature, _CONTEXT + manifest)
        except InvalidSignature:
            raise RegistryIntegrityError(
                f"{where}: {SIGNATURE} does not match {MANIFEST}: the manifest was changed after "
                f"signing (or signed with another key), refused"
            ) from None


def _read_key_file(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise RegistryKeyError(f"cannot read the registry {what} {path}: {exc.strerror}") from None


def _load_private(path: Path) -> Ed25519PrivateKey:
    data = _read_key_file(path, "signing key")
    if path.stat().st_mode & 0o077:
        log.warning("registry signing key %s is readable by group/others: chmod 600 it", path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise RegistryKeyError(
            f"registry signing key {path} is not an unencrypted PEM private key"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise RegistryKeyError(f"registry signing key {path} is not an Ed25519 key")
    return key


def _load_public(path: Path) -> Ed25519PublicKey:
    data = _read_key_file(path, "verify key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise RegistryKeyError(f"registry verify key {path} is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise RegistryKeyError(f"registry verify key {path} is not an Ed25519 key")
    return key


def _private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _write_new(path: Path, data: bytes, mode: int) -> bool:
    """Create ``path`` whole with ``mode``, only if absent (False when it already exists)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # atomic and exclusive: a concurrent writer's file wins, whole
        except FileExistsError:
            return False
        except OSError:  # a filesystem without hard links
            if path.exists():
                return False
            os.replace(tmp, path)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def generate_key_pair(directory: Path) -> tuple[Path, Path]:
    """Write a new Ed25519 pair into ``directory`` (private key mode 0600); refuses to
    overwrite. Returns (signing key path, verify key path)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    private, public = directory / DEV_SIGNING_KEY, directory / DEV_VERIFY_KEY
    for path in (private, public):
        if path.exists():
            raise RegistryKeyError(f"{path} already exists; not overwriting a key")
    key = Ed25519PrivateKey.generate()
    if not _write_new(private, _private_pem(key), 0o600):
        raise RegistryKeyError(f"{private} already exists; not overwriting a key")
    _write_new(public, _public_pem(key.public_key()), 0o644)
    return private, public


def _ensure_dev_keys(directory: Path) -> Path:
    """The dev checkout's signing key, generated once (concurrent callers agree on one)."""
    private = directory / DEV_SIGNING_KEY
    if private.exists():
        return private
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    if _write_new(private, _private_pem(key), 0o600):
        _write_new(directory / DEV_VERIFY_KEY, _public_pem(key.public_key()), 0o644)
        log.warning(
            "no registry signing key configured: generated a development key pair in %s "
            "(key id %s); production sets %s (training host) and %s (workers)",
            directory,
            key_id(key.public_key()),
            SIGNING_KEY_ENV,
            VERIFY_KEY_ENV,
        )
    return private


def _env_path(env: Mapping[str, str], name: str) -> Path | None:
    value = env.get(name, "").strip()
    return Path(value).expanduser() if value else None


@dataclass(frozen=True)
class RegistryKeys:
    """Where the registry's keys are. ``signing_key``: private PEM (training host only);
    ``verify_key``: public PEM (every host that loads models). ``dev_dir``: where a dev pair is
    generated and looked up when neither key is configured (None: never)."""

    signing_key: Path | None = None
    verify_key: Path | None = None
    dev_dir: Path | None = None

    @classmethod
    def from_paths(
        cls, signing_key: Path | str | None = None, verify_key: Path | str | None = None
    ) -> RegistryKeys:
        """Keys at these paths; with neither given, the dev pair under ``<home>/keys``."""
        sign = Path(signing_key).expanduser() if signing_key else None
        verify = Path(verify_key).expanduser() if verify_key else None
        dev = paths.home() / "keys" if sign is None and verify is None else None
        return cls(signing_key=sign, verify_key=verify, dev_dir=dev)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RegistryKeys:
        """Keys from ``DECISIONFLOW_REGISTRY__SIGNING_KEY`` / ``__VERIFY_KEY``."""
        env = os.environ if environ is None else environ
        return cls.from_paths(_env_path(env, SIGNING_KEY_ENV), _env_path(env, VERIFY_KEY_ENV))

    def signer(self) -> Signer:
        """The signer (generates the dev pair when no key is configured at all)."""
        if self.signing_key is not None:
            signer = Signer(_load_private(self.signing_key))
        elif self.dev_dir is not None:
            signer = Signer(_load_private(_ensure_dev_keys(self.dev_dir)))
        else:
            raise RegistryKeyError(
                f"no registry signing key on this host: set {SIGNING_KEY_ENV} (signing belongs "
                f"on the training host; workers hold only {VERIFY_KEY_ENV})"
            )
        if self.verify_key is not None:
            trusted = key_id(_load_public(self.verify_key))
            if trusted != signer.key_id:
                raise RegistryKeyError(
                    f"registry signing key (id {signer.key_id}) does not match the verify key "
                    f"{self.verify_key} (id {trusted}): versions signed with it would not load"
                )
        return signer

    def verifier(self) -> Verifier:
        """The verifier: the verify key, else the signing key's public half, else the dev pair."""
        if self.verify_key is not None:
            return Verifier(_load_public(self.verify_key), f"{VERIFY_KEY_ENV}={self.verify_key}")
        if self.signing_key is not None:
            public = _load_private(self.signing_key).public_key()
            return Verifier(public, f"public half of {SIGNING_KEY_ENV}={self.signing_key}")
        if self.dev_dir is not None:
            source = f"development key in {self.dev_dir}"
            if (self.dev_dir / DEV_VERIFY_KEY).exists():
                return Verifier(_load_public(self.dev_dir / DEV_VERIFY_KEY), source)
            if (self.dev_dir / DEV_SIGNING_KEY).exists():  # its public half not written yet
                return Verifier(_load_private(self.dev_dir / DEV_SIGNING_KEY).public_key(), source)
        raise RegistryKeyError(
            f"no registry verify key on this host: set {VERIFY_KEY_ENV} to the training "
            f"host's public key (PEM)"
        )
