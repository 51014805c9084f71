"""Cost-optimal cut-offs as a new policy version: the pure optimisation, the files (versions,
promotion, audit history, the lookup) and the whole step on a registered champion."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from decisioning.flow import load_flow
from decisioning.policy import PolicyError, load_policy
from decisioning.thresholds import Costs, expected_value
from models.registry import ModelRegistry
from models.spec import FeatureSpec
from models.training import train_family
from pipelines.policy_optimise import (
    bump_version,
    flow_policy_dir,
    flow_policy_ref,
    optimise_cutoffs,
    optimise_flow_policy,
    optimise_policy_step,
    policy_history,
    promote_policy,
    write_policy_version,
)

COSTS = Costs(gain_good_approved=1.0, loss_bad_approved=5.0, review_cost=0.3)


@pytest.mark.parametrize(
    ("old", "new"),
    [("1.1", "1.2"), ("1.0", "1.1"), ("1.9", "1.10"), ("2", "3"), ("v3", "v4"), ("beta", "beta.1")],
)
def test_the_version_goes_up_by_one(old: str, new: str) -> None:
    assert bump_version(old) == new


# ------------------------------------------------------------------ pure part


@pytest.fixture()
def batch() -> tuple[pd.DataFrame, list[str], np.ndarray, np.ndarray]:
    """400 applicants: risk scores that rank the bad ones high, some renters, some rule hits."""
    rng = np.random.default_rng(0)
    n = 400
    bad = rng.random(n) < 0.3
    scores = np.clip(np.where(bad, 0.55, 0.25) + rng.normal(scale=0.18, size=n), 0.0, 1.0)
    features = pd.DataFrame(
        {
            "Home": rng.choice(["owner", "rent"], size=n, p=[0.7, 0.3]),
            "Amount": np.where(rng.random(n) < 0.05, 5000.0, 1000.0),  # > 4000: rule -> review
            "Income": 100.0,
        }
    )
    return features, [f"c-{i}" for i in range(n)], scores, bad


def test_the_default_bands_become_cost_optimal_and_nothing_else_changes(
    batch: tuple[pd.DataFrame, list[str], np.ndarray, np.ndarray],
) -> None:
    features, ids, scores, bad = batch
    old = load_policy("credit_v1")
    result = optimise_cutoffs(old, features, ids, scores, bad, COSTS, version="1.2")
    new, cut = result.new, result.cutoffs
    assert (new.name, new.version) == ("credit", "1.2")
    assert [(b.decision, b.lower, b.upper) for b in new.bands] == [
        ("approve", 0.0, cut.approve_below),
        ("review", cut.approve_below, cut.decline_from),
        ("decline", cut.decline_from, 1.0),
    ]
    assert (new.rules, new.segments, new.reason_codes) == (
        old.rules,
        old.segments,
        old.reason_codes,
    )

    # optimised on the rows the default bands decide: no rule hit, not a renter
    free = (features["Amount"] <= 4000) & (features["Home"] != "rent")
    assert result.rows == int(free.sum()) and result.n == len(ids)
    # those rows gain what the optimum gains over the old cut-offs; the others are unchanged
    y, s = bad[free.to_numpy()], scores[free.to_numpy()]
    gain = cut.expected_value - expected_value(y, s, COSTS, 0.25, 0.5, positive_label=True)
    assert result.new_value - result.old_value == pytest.approx(gain * result.rows / result.n)
    assert result.new_value >= result.old_value

    diff = {row["decision"]: row for row in result.band_diff()}
    assert diff["approve"]["old"] == [[0.0, 0.25]]
    assert diff["decline"]["new"] == [[cut.decline_from, 1.0]]


def test_a_segment_s_bands_can_be_optimised_alone(
    batch: tuple[pd.DataFrame, list[str], np.ndarray, np.ndarray],
) -> None:
    features, ids, scores, bad = batch
    old = load_policy("credit_v1")
    result = optimise_cutoffs(
        old, features, ids, scores, bad, COSTS, version="1.2", segment="renters"
    )
    assert result.new.bands == old.bands
    renters = result.new.segments[0].bands
    assert renters[0].upper == result.cutoffs.approve_below
    assert result.rows == int(((features["Home"] == "rent") & (features["Amount"] <= 4000)).sum())


def test_a_policy_that_does_not_fit_is_refused(
    batch: tuple[pd.DataFrame, list[str], np.ndarray, np.ndarray],
) -> None:
    features, ids, scores, bad = batch
    policy = load_policy("credit_v1")
    with pytest.raises(PolicyError, match="no segment 'students'"):
        optimise_cutoffs(policy, features, ids, scores, bad, COSTS, version="2", segment="students")
    with pytest.raises(PolicyError, match="lacks decision"):
        optimise_cutoffs(
            policy, features, ids, scores, bad, COSTS, version="2", decisions=("ok", "maybe", "no")
        )
    everyone_rents = features.assign(Home="rent")
    with pytest.raises(ValueError, match="no labelled row is decided by the default bands"):
        optimise_cutoffs(policy, everyone_rents, ids, scores, bad, COSTS, version="2")


# ------------------------------------------------------------------ files


def test_promotion_is_audited_and_the_flow_then_uses_the_promoted_file(tmp_path: Path) -> None:
    credit = load_flow("credit_data")
    assert flow_policy_ref(credit, tmp_path) == "credit_v1"  # nothing promoted: the flow's own
    shipped = load_policy("credit_v1")
    newer = shipped.model_copy(update={"version": "1.2"})
    path = write_policy_version("credit_data", newer, tmp_path)
    assert path == flow_policy_dir("credit_data", tmp_path) / "credit-1.2.yaml"
    with pytest.raises(FileExistsError):  # a written version is never overwritten
        write_policy_version("credit_data", newer, tmp_path)
    assert flow_policy_ref(credit, tmp_path) == "credit_v1"  # written is not promoted

    event = promote_policy(credit, "1.2", who="risk-owner", why="Q3 review", root=tmp_path)
    assert flow_policy_ref(credit, tmp_path) == str(path)
    assert load_policy(flow_policy_ref("credit_data", tmp_path)).version == "1.2"
    assert policy_history(credit, tmp_path) == [event]
    assert event["who"] == "risk-owner" and event["why"] == "Q3 review"
    assert event["old"] == {"ref": "credit_v1", "name": "credit", "version": "1.1"}
    assert event["new"]["version"] == "1.2" and event["new"]["ref"] == str(path)
    # the other flow is untouched
    assert flow_policy_ref("mortgage", tmp_path) == "mortgage_v1"
    assert policy_history("mortgage", tmp_path) == []

    with pytest.raises(ValueError, match="no single policy version '9\\.9'"):
        promote_policy(credit, "9.9", root=tmp_path)
    path.write_text(path.read_text().replace("to: 0.25", "to: 0.3"))  # edited after promotion
    with pytest.raises(PolicyError, match="missing or changed"):
        flow_policy_ref(credit, tmp_path)


def test_a_policy_must_fit_the_flow_s_spec_to_be_promoted(tmp_path: Path) -> None:
    credit_policy = load_policy("credit_v1").model_copy(update={"version": "7"})
    write_policy_version("mortgage", credit_policy, tmp_path)  # names credit features
    with pytest.raises(PolicyError, match="unknown feature"):
        promote_policy("mortgage", "7", root=tmp_path)
    assert flow_policy_ref("mortgage", tmp_path) == "mortgage_v1"


# ------------------------------------------------------------------ the step on a champion


@pytest.fixture()
def champion(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    credit_split: tuple[pd.DataFrame, pd.DataFrame],
    credit_spec: FeatureSpec,
) -> ModelRegistry:
    """A logistic-regression champion of credit_data in a registry under a throwaway home."""
    monkeypatch.setenv("DECISIONFLOW_HOME", str(tmp_path))
    monkeypatch.delenv("DECISIONFLOW_POLICIES_DIR", raising=False)
    registry = ModelRegistry(str(tmp_path / "registry"))
    train, _ = credit_split
    registry.register(train_family("logreg", train, credit_spec), name="credit_data")
    registry.promote("credit_data", 1, reason="test champion")
    return registry


def test_optimising_writes_the_next_version_and_promotes_it_only_when_asked(
    champion: ModelRegistry, tmp_path: Path, credit_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    run = optimise_flow_policy("credit_data", COSTS, registry=champion)
    assert run.optimised.n == len(credit_split[1])  # the champion's holdout, split as trained
    assert "seed 0" in run.source and run.model_version == 1
    written = load_policy(run.path)
    assert written.version == "1.2" and run.path.parent == tmp_path / "policies" / "credit_data"
    assert run.promotion is None and flow_policy_ref("credit_data") == "credit_v1"
    text = run.render()
    assert "approve   [0, 0.25)" in text and "per 1,000 decisions" in text
    assert "policy promote --flow credit_data --version 1.2" in text

    applied = optimise_flow_policy("credit_data", COSTS, registry=champion, apply=True, who="me")
    assert applied.optimised.new.version == "1.3"  # 1.2 is taken
    assert flow_policy_ref("credit_data") == str(applied.path)
    (event,) = policy_history("credit_data")
    assert event["who"] == "me" and "cost-optimal cut-offs" in event["why"]
    assert event["details"]["value_per_1000"] == applied.to_dict()["value_per_1000"]
    # the next optimisation starts from the promoted version
    assert optimise_flow_policy("credit_data", COSTS, registry=champion).old_ref == str(
        applied.path
    )


def test_the_dag_step_uses_the_run_holdout_once(
    champion: ModelRegistry, tmp_path: Path, credit_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    work = tmp_path / "run"
    work.mkdir()
    credit_split[1].head(300).to_parquet(work / "holdout.parquet", index=False)
    kwargs = {"gain_good_approved": 1.0, "loss_bad_approved": 5.0, "review_cost": 0.3}
    doc = optimise_policy_step(str(work), "credit_data", champion.url, apply=True, **kwargs)
    assert doc["rows"] == 300 and doc["promoted"] and doc["new"]["version"] == "1.2"
    assert json.loads((work / "policy.json").read_text()) == doc
    # a retry returns the recorded result: no second version, no second promotion
    assert optimise_policy_step(str(work), "credit_data", champion.url, **kwargs) == doc
    assert len(policy_history("credit_data")) == 1
    assert sorted(p.name for p in (tmp_path / "policies" / "credit_data").glob("*.yaml")) == [
        "credit-1.2.yaml"
    ]
