"""Helpers shared by more than one report module (evaluation and drift).

Anything used by a single report lives in that report's module, not here.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["fmt_number"]


def fmt_number(value: Any) -> str:
    """A headline figure with three decimals, or an em dash when missing or not a number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "—"
    return "—" if math.isnan(number) else f"{number:.3f}"
