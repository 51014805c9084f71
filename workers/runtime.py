"""The deciding part of a worker process, as one typed object.

The decision-loop bootstep builds one per decision flow the worker serves and installs them;
the ``reload_model`` control command (also in the worker's MainProcess) finds them here.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

__all__ = ["DecisionRuntime", "current", "install", "installed", "uninstall"]


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


_installed: dict[str, DecisionRuntime] = {}  # flow -> its runtime


def install(runtime: DecisionRuntime, flow: str = "default") -> None:
    """Make ``runtime`` this process's deciding runtime for ``flow``."""
    _installed[flow] = runtime


def uninstall(flow: str | None = None) -> None:
    """This process decides no more for ``flow`` (every flow when None)."""
    if flow is None:
        _installed.clear()
    else:
        _installed.pop(flow, None)


def installed() -> dict[str, DecisionRuntime]:
    """Every deciding runtime of this process, by flow (a copy)."""
    return dict(_installed)


def current() -> DecisionRuntime | None:
    """This process's first deciding runtime, or None when it runs no decision loop."""
    return next(iter(_installed.values()), None)
