"""The starter policy of a new flow is valid, loads back equal and names every feature."""

from __future__ import annotations

from pathlib import Path

import pytest

from decisioning.policy import PolicyError, load_policy
from decisioning.policy_scaffold import starter_policy, starter_policy_yaml

FEATURES = ["income", "age", "owner"]


def test_the_starter_policy_loads_back_equal_with_its_features(tmp_path: Path) -> None:
    policy = starter_policy("card", FEATURES, "yes")
    path = tmp_path / "card.policy.yaml"
    path.write_text(starter_policy_yaml(policy), encoding="utf-8")
    assert load_policy(path, known_features=FEATURES) == policy
    assert [(b.decision, b.lower, b.upper) for b in policy.bands] == [
        ("approve", 0.0, 0.2),
        ("review", 0.2, 0.5),
        ("decline", 0.5, 1.0),
    ]
    assert policy.fallback.decision == "review"
    assert [policy.reason_codes[f].code for f in FEATURES] == ["R01", "R02", "R03"]
    assert (policy.reasons, policy.explain_only) == ("gradient_x_input", ["review", "decline"])
    assert policy.score.positive_class == "yes"


def test_reason_codes_tie_the_policy_to_its_features(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(starter_policy_yaml(starter_policy("card", FEATURES, True)), encoding="utf-8")
    with pytest.raises(PolicyError, match="unknown feature 'owner'"):
        load_policy(path, known_features=FEATURES[:2])
    assert starter_policy("card", FEATURES, True).score.positive_class == "true"


def test_duplicate_features_and_bad_names_are_refused() -> None:
    with pytest.raises(PolicyError, match=r"duplicate feature names \['age'\]"):
        starter_policy("card", ["age", "age"], 1)
    with pytest.raises(PolicyError, match="name"):
        starter_policy("", FEATURES, 1)
