"""Aliases (``champion``, ``challenger``...) and their append-only history, per model name.

``<root>/<name>/aliases.json`` holds ``{"champion": 3, "challenger": 4}`` (replaced atomically);
``<root>/<name>/alias_history.jsonl`` one JSON object per move, with its reason and the gate's
verdict when a gate decided it. Rollback replays that history as a stack.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from models.registry_files import RegistryError, RegistryFiles, json_default

__all__ = ["ALIASES_FILE", "HISTORY_FILE", "AliasBook", "AliasEvent"]

ALIASES_FILE = "aliases.json"
HISTORY_FILE = "alias_history.jsonl"


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


class AliasBook:
    """Reads and moves the aliases of the models stored in ``files``."""

    def __init__(self, files: RegistryFiles) -> None:
        self.files = files

    def aliases(self, name: str) -> dict[str, int]:
        """Current alias -> version mapping of ``name`` (empty if none)."""
        try:
            raw = json.loads(self.files.read(self.files.path(name, ALIASES_FILE)))
        except FileNotFoundError:
            return {}
        return {str(k): int(v) for k, v in raw.items() if v is not None}

    def history(self, name: str) -> list[AliasEvent]:
        """The alias history of ``name``, oldest first."""
        try:
            text = self.files.read(self.files.path(name, HISTORY_FILE)).decode("utf-8")
        except FileNotFoundError:
            return []
        return [AliasEvent(**json.loads(line)) for line in text.splitlines() if line.strip()]

    def move(
        self,
        name: str,
        alias: str,
        version: int | None,
        action: str,
        reason: str,
        verdict: Mapping[str, Any] | None = None,
    ) -> AliasEvent:
        """Point ``alias`` at ``version`` (None removes it) and log the move; hold the lock."""
        aliases = self.aliases(name)
        event = AliasEvent(
            ts=dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
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
        self.files.write_atomic(self.files.path(name, ALIASES_FILE), payload)
        line = json.dumps(event.to_dict(), sort_keys=True, default=json_default) + "\n"
        self.files.append(self.files.path(name, HISTORY_FILE), line.encode())
        return event

    def previous(self, name: str, alias: str) -> int:
        """The version ``alias`` pointed to before its latest promotion still standing.

        The history is replayed as a stack (promote pushes the replaced version, rollback pops),
        so repeated rollbacks walk further back. Nothing to go back to -> RegistryError.
        """
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
        return stack[-1]
