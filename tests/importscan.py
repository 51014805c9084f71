"""Every import statement of a source tree, top level or inside functions (static, via ast)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

__all__ = ["Import", "imports_of"]

ROOT = Path(__file__).resolve().parents[1]


class Import:
    """``module`` imported (``names`` for a from-import) at ``where`` (file:line)."""

    def __init__(self, module: str, names: tuple[str, ...], where: str) -> None:
        self.module, self.names, self.where = module, names, where

    def __repr__(self) -> str:
        what = f"from {self.module} import {', '.join(self.names)}" if self.names else self.module
        return f"{self.where}: {what}"


def imports_of(package: str) -> Iterator[Import]:
    """Absolute imports in every ``.py`` file under ``<repo>/<package>``."""
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield Import(alias.name, (), where)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                yield Import(node.module, tuple(a.name for a in node.names), where)
