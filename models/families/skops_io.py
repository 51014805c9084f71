"""Safe scikit-learn persistence with skops: explicit allow-lists, never pickle."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import skops.io as sio

from models.family import UnsafeArtifactError

__all__ = ["dump_estimator", "load_estimator"]


def dump_estimator(estimator: Any, path: Path) -> None:
    """Write ``estimator`` to ``path`` in the skops format."""
    sio.dump(estimator, path)


def load_estimator(path: Path, allowed: Iterable[str]) -> Any:
    """Load a skops file, refusing any type that is neither skops-default-trusted nor allowed.

    ``get_untrusted_types`` lists the types skops would not load by default; each must be in
    ``allowed`` (an explicit allow-list owned by the family), else :class:`UnsafeArtifactError`.
    """
    allow = set(allowed)
    untrusted = sio.get_untrusted_types(file=path)
    refused = sorted(t for t in untrusted if t not in allow)
    if refused:
        raise UnsafeArtifactError(f"{path.name} holds types outside the allow-list: {refused}")
    return sio.load(path, trusted=sorted(untrusted))
