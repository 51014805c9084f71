"""Shared fixtures of the unit tests: the packaged credit table and a tiny synthetic
table whose label is driven by one known feature."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.data import holdout_split, load_frame
from models.spec import FeatureSpec, load_spec, spec_from_mapping


@pytest.fixture(scope="session")
def credit_spec() -> FeatureSpec:
    return load_spec("credit_data")


@pytest.fixture(scope="session")
def credit_df(credit_spec: FeatureSpec) -> pd.DataFrame:
    return load_frame(credit_spec)


@pytest.fixture(scope="session")
def credit_split(
    credit_df: pd.DataFrame, credit_spec: FeatureSpec
) -> tuple[pd.DataFrame, pd.DataFrame]:
    return holdout_split(credit_df, credit_spec, test_size=0.2, seed=0)


SYNTH_SPEC = {
    "name": "synthetic",
    "source": None,
    "entity_key": {"column": "id", "synthesize_format": "s-{:05d}"},
    "label": {"column": "target", "positive": "yes"},
    "columns": [
        {"name": "noise", "type": "numeric"},
        {"name": "driver", "type": "numeric", "missing": {"strategy": "median", "indicator": True}},
        {"name": "color", "type": "categorical"},
        {"name": "flag", "type": "boolean"},
    ],
}


@pytest.fixture(scope="session")
def synth_spec() -> FeatureSpec:
    return spec_from_mapping(SYNTH_SPEC)


def make_synthetic(n: int = 800, seed: int = 0) -> pd.DataFrame:
    """Label = yes iff driver + small noise > 0; the other features carry no signal."""
    rng = np.random.default_rng(seed)
    driver = rng.normal(size=n)
    logit = 4.0 * driver + rng.normal(scale=0.5, size=n)
    df = pd.DataFrame(
        {
            "id": [f"s-{i:05d}" for i in range(n)],
            "noise": rng.normal(size=n),
            "driver": driver,
            "color": rng.choice(["red", "green", "blue"], size=n),
            "flag": rng.choice([True, False], size=n),
            "target": np.where(logit > 0, "yes", "no"),
        }
    )
    df.loc[rng.choice(n, size=n // 20, replace=False), "driver"] = np.nan
    return df


@pytest.fixture(scope="session")
def synth_df() -> pd.DataFrame:
    return make_synthetic()


@pytest.fixture(scope="session")
def synth_split(
    synth_df: pd.DataFrame, synth_spec: FeatureSpec
) -> tuple[pd.DataFrame, pd.DataFrame]:
    return holdout_split(synth_df, synth_spec, test_size=0.25, seed=0)


@pytest.fixture(scope="session")
def make_synth() -> object:
    """The synthetic-table factory, for tests needing other sizes/seeds."""
    return make_synthetic
