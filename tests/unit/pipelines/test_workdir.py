"""Validation of training data fails with every problem named; a clean frame is split once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from decisioning.contracts import Event, Outcome
from models.spec import load_spec
from pipelines.retrain import DataValidationError
from pipelines.workdir import extract_training_data, validate_training_data
from storage import store

SPEC = load_spec("credit_data")


def _frame(n: int, bad_share: float) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    data: dict[str, object] = {SPEC.entity_key.column: [f"a{i}" for i in range(n)]}
    for col in SPEC.columns:
        data[col.name] = rng.normal(size=n) if col.type == "numeric" else ["x"] * n
    data[SPEC.label.column] = np.where(rng.random(n) < bad_share, "bad", "good")
    return pd.DataFrame(data)


def test_validation_names_every_problem(tmp_path: Path) -> None:
    frame = _frame(40, 0.0).drop(columns=["Home"])
    frame["Income"] = None
    frame.to_parquet(tmp_path / "data.parquet")
    with pytest.raises(DataValidationError) as err:
        validate_training_data(str(tmp_path), "credit_data", min_rows=100)
    text = str(err.value)
    assert "missing column(s) ['Home']" in text
    assert "only 40 labelled rows; at least 100" in text
    assert "feature Income is missing in 100% of rows" in text
    assert "rarer class is 0.0%" in text
    assert not (tmp_path / "train.parquet").exists()


def test_clean_data_is_split_into_train_and_holdout(tmp_path: Path) -> None:
    _frame(300, 0.3).to_parquet(tmp_path / "data.parquet")
    info = validate_training_data(str(tmp_path), "credit_data", min_rows=100, seed=1)
    assert (info["train_rows"], info["holdout_rows"]) == (240, 60)
    again = validate_training_data(str(tmp_path), "credit_data", min_rows=100, seed=1)
    assert again["holdout_fingerprint"] == info["holdout_fingerprint"]  # retries are stable


def test_an_entity_decided_several_times_is_one_training_row(tmp_path: Path) -> None:
    # the same application streamed three times: three events, one example
    url = f"sqlite:///{tmp_path / 'store.db'}"
    t0 = pd.Timestamp("2026-11-01", tz="UTC").to_pydatetime()
    events = [
        Event(
            event_id=f"e{i}",
            entity_id="app-1" if i < 3 else f"app-{i}",
            event_time=t0 + pd.Timedelta(hours=i),
            features={"Amount": 1000.0 + i},
        )
        for i in range(5)
    ]
    engine = store.make_engine(url)
    store.create_schema(engine)
    with engine.begin() as conn:
        store.write_events(conn, events)
        store.write_outcomes(
            conn,
            [
                Outcome(event_id=e.event_id, entity_id=e.entity_id, label="bad", observed_at=t0)
                for e in events
            ],
        )
    engine.dispose()
    out = extract_training_data(url, "credit_data", str(tmp_path / "work"), bootstrap=False)
    frame = pd.read_parquet(tmp_path / "work" / "data.parquet")
    assert out["rows"] == 3 and frame["application_id"].is_unique
    assert frame.loc[frame["application_id"] == "app-1", "Amount"].item() == 1002.0  # latest
