"""The deciding part of a worker process, as one typed object.

The decision-loop bootstep builds it and installs it; the ``reload_model`` control command
(also in the worker's MainProcess) finds it here. One worker process decides with one runtime
(pool solo: one per GPU).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

__all__ = ["DecisionRuntime", "current", "install", "uninstall"]


class Reloadable(Protocol):
    """What the control command needs of the model holder."""

    version: int | None

    def request_reload(self) -> None:
        """Check the champion alias before the next batch."""


class Stoppable(Protocol):
    """What the bootstep needs of the decision loop."""

    def run(self) -> None:
        """Decide until stopped."""

    def stop(self) -> None:
        """Finish the batch in flight, commit, return from :meth:`run`."""


@dataclass
class DecisionRuntime:
    """The decision loop, the model holder it reloads from, and the loop's thread."""

    loop: Stoppable
    holder: Reloadable
    thread: threading.Thread | None = None

    def request_reload(self) -> str:
        """Ask for an alias check before the next batch; says what decides now."""
        self.holder.request_reload()
        return f"reload requested (deciding with v{self.holder.version})"


_current: DecisionRuntime | None = None  # one assignment: atomic, no lock needed


def install(runtime: DecisionRuntime) -> None:
    """Make ``runtime`` this process's deciding runtime."""
    global _current
    _current = runtime


def uninstall() -> None:
    """This process decides no more (after the loop stopped)."""
    global _current
    _current = None


def current() -> DecisionRuntime | None:
    """This process's deciding runtime, or None when it runs no decision loop."""
    return _current
