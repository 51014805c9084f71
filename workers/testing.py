"""In-package test doubles: a deterministic model standing in for a registry model."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from models.spec import FeatureSpec, load_spec

__all__ = ["FakeModel", "valid_event"]


@dataclass
class FakeModel:
    """Risk rises with Amount: score = Amount / (Amount + 2000). Can fail or stall on demand."""

    version: int = 1
    name: str = "credit_data"
    spec: FeatureSpec = None  # type: ignore[assignment]
    fail: bool = False
    delay_s: float = 0.0

    def __post_init__(self) -> None:
        if self.spec is None:
            self.spec = load_spec("credit_data")

    def score(self, df: pd.DataFrame) -> npt.NDArray[np.float64]:
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail:
            raise RuntimeError("model exploded")
        amount = pd.to_numeric(df["Amount"], errors="coerce").fillna(0).to_numpy(np.float64)
        return amount / (amount + 2000.0)

    def explain(self, df: pd.DataFrame) -> npt.NDArray[np.float64]:
        out = np.zeros((len(df), len(self.spec.feature_names)))
        out[:, self.spec.feature_names.index("Amount")] = self.score(df)
        return out


def valid_event(i: int, amount: float = 1000.0) -> dict[str, object]:
    """A valid credit event payload number ``i``."""
    from workers.producer import event_payload

    return event_payload(
        f"app-{i:06d}",
        {"Amount": amount, "Home": "rent", "Seniority": 3, "Income": 150.0, "Records": "no"},
        event_id=f"evt-{i}",
    )
