"""Runtime variants of a registered version: how they are named and stored in its folder.

A variant (``onnx``, ``int8``, ``fp16``, ``bf16``) is an optimised way to compute the SAME
version's scores. It lives in the version folder next to the native files, every file listed
(and so signed) in the version's manifest like any other:

    variant.<name>.json          the report: servable or not, parity on the holdout, speed
    variant.<name>.<file>        its artifacts (e.g. ``variant.onnx.model.onnx``); none for a
                                 variant that failed to build, or one computed by a recipe
                                 (a cast of the native weights at load)

:func:`add_variant` is the one way a variant is stored: it goes through the registry's
:meth:`~models.registry.ModelRegistry.add_files`, which verifies the version, writes the files
and rewrites and re-signs its manifest (so the signature covers the variant too). Reading is
plain JSON: nothing here deserialises a model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from models.registry_files import json_default, sha256

__all__ = [
    "REPORT_SUFFIX",
    "VARIANT_PREFIX",
    "VariantError",
    "add_variant",
    "check_variant_name",
    "read_reports",
    "report_file",
    "reports_from_files",
    "variant_entries",
    "variant_files",
    "variant_prefix",
]

VARIANT_PREFIX = "variant."
REPORT_SUFFIX = ".json"
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_FILE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class VariantError(ValueError):
    """A malformed variant name, file name or report."""


def check_variant_name(variant: str) -> str:
    """``variant`` if it is a valid variant name (lower-case letters, digits, ``_``)."""
    if not _NAME_RE.match(variant):
        raise VariantError(f"invalid variant name {variant!r} (a-z, 0-9, _; a letter first)")
    return variant


def variant_prefix(variant: str) -> str:
    """The file-name prefix every file of ``variant`` starts with."""
    return f"{VARIANT_PREFIX}{check_variant_name(variant)}."


def report_file(variant: str) -> str:
    """The report's file name: ``variant.<name>.json``."""
    return f"{variant_prefix(variant).rstrip('.')}{REPORT_SUFFIX}"


def variant_entries(
    variant: str, files: Mapping[str, bytes], report: Mapping[str, Any]
) -> dict[str, bytes]:
    """The version-folder files of a variant: its artifacts (``files``, short names such as
    ``model.onnx``) under its prefix, and its report, which names each with its sha256."""
    prefix = variant_prefix(variant)
    entries: dict[str, bytes] = {}
    for short, data in files.items():
        if not _FILE_RE.match(short) or short == "json":
            raise VariantError(f"invalid file name {short!r} for variant {variant!r}")
        entries[prefix + short] = bytes(data)
    doc = {
        **report,
        "variant": variant,
        "files": {short: sha256(data) for short, data in sorted(files.items())},
    }
    text = json.dumps(doc, indent=1, sort_keys=True, default=json_default, allow_nan=False)
    entries[report_file(variant)] = text.encode()
    return entries


def reports_from_files(files: Mapping[str, bytes]) -> dict[str, dict[str, Any]]:
    """Every variant report among a version's files (name -> report), by variant name."""
    out: dict[str, dict[str, Any]] = {}
    for fname, data in sorted(files.items()):
        if not (fname.startswith(VARIANT_PREFIX) and fname.endswith(REPORT_SUFFIX)):
            continue
        variant = fname[len(VARIANT_PREFIX) : -len(REPORT_SUFFIX)]
        if not _NAME_RE.match(variant):
            continue  # an artifact that happens to end in .json, e.g. variant.x.config.json
        try:
            doc = json.loads(data)
        except ValueError:
            raise VariantError(f"{fname} is not JSON") from None
        if not isinstance(doc, dict) or doc.get("variant") != variant:
            raise VariantError(f"{fname} is not the report of variant {variant!r}")
        out[variant] = doc
    return out


def variant_files(files: Mapping[str, bytes], report: Mapping[str, Any]) -> dict[str, bytes]:
    """The artifacts a report names (short name -> bytes), taken from a version's VERIFIED
    files; each must be there with the sha256 the report recorded."""
    prefix = variant_prefix(str(report.get("variant")))
    out: dict[str, bytes] = {}
    for short, digest in dict(report.get("files") or {}).items():
        data = files.get(prefix + short)
        if data is None or sha256(data) != digest:
            raise VariantError(f"{prefix}{short} is missing or differs from its report")
        out[short] = data
    return out


def add_variant(
    registry: Any,
    name: str,
    ref: str | int,
    variant: str,
    files: Mapping[str, bytes],
    report: Mapping[str, Any],
) -> int:
    """Store ``variant`` of version ``ref`` of ``name``: its artifacts (short name -> bytes)
    and its report, replacing an earlier one of the same name; returns the version number.

    Through :meth:`ModelRegistry.add_files` (verify, write, re-seal and sign under the model's
    lock): the version's manifest lists and signs every variant file.
    """
    version = int(registry.resolve(name, ref))
    registry.add_files(name, version, variant_entries(variant, files, report), replace=True)
    return version


def read_reports(registry: Any, name: str, version: int) -> dict[str, dict[str, Any]]:
    """The variant reports of a version, for listing: read like ``list_versions`` reads
    metadata (no signature check: loading a variant always verifies the whole version)."""
    files = registry.files
    base = files.path(name, "versions", version)
    wanted = [
        n for n in files.names(base) if n.startswith(VARIANT_PREFIX) and n.endswith(REPORT_SUFFIX)
    ]
    return reports_from_files({n: files.read(f"{base}/{n}") for n in wanted})
