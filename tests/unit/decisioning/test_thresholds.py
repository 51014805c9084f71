"""Cost-optimal cut-offs equal a brute-force search; writing them into a new policy version."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decisioning.decide import decide_batch
from decisioning.policy import PolicyError, load_policy
from decisioning.thresholds import Costs, apply_cutoffs, expected_value, optimal_cutoffs

COSTS = Costs(gain_good_approved=1.0, loss_bad_approved=5.0, review_cost=0.3)


def brute_force(bad: np.ndarray, s: np.ndarray, costs: Costs) -> tuple[float, float]:
    """Best (pair value, single-cut value) over every split a policy can express."""
    candidates = sorted({0.0, 1.0, *s.tolist()})
    best_pair = best_single = -np.inf
    for i, t1 in enumerate(candidates):
        best_single = max(best_single, expected_value(bad, s, costs, t1, t1))
        for t2 in candidates[i:]:
            best_pair = max(best_pair, expected_value(bad, s, costs, t1, t2))
    return best_pair, best_single


def check(bad: np.ndarray, s: np.ndarray, costs: Costs) -> None:
    result = optimal_cutoffs(bad, s, costs)
    pair, single = brute_force(bad, s, costs)
    assert result.expected_value == pytest.approx(pair, abs=1e-9)
    assert result.single_cut_value == pytest.approx(single, abs=1e-9)
    assert 0.0 <= result.approve_below <= result.decline_from <= 1.0
    # the returned thresholds reproduce the value and the rates under policy semantics
    assert expected_value(bad, s, costs, result.approve_below, result.decline_from) == (
        pytest.approx(result.expected_value, abs=1e-9)
    )
    assert np.mean(s < result.approve_below) == pytest.approx(result.approve_rate)
    assert np.mean(s >= result.decline_from) == pytest.approx(result.decline_rate)
    t = result.single_cut_threshold
    assert expected_value(bad, s, costs, t, t) == pytest.approx(single, abs=1e-9)
    curve = result.curve
    assert curve["value_single_cut"].max() == pytest.approx(single, abs=1e-9)
    assert curve["value_vary_t1"].max() == pytest.approx(pair, abs=1e-9)
    assert curve["value_vary_t2"].max() == pytest.approx(pair, abs=1e-9)
    assert curve["threshold"].is_monotonic_increasing


def test_fixture_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    bad = rng.random(300) < 0.3
    s = np.clip(rng.normal(0.3 + 0.3 * bad, 0.15), 0.0, 1.0).round(2)  # many ties, 0 and 1
    check(bad, s, COSTS)
    result = optimal_cutoffs(bad, s, COSTS)
    assert min(result.approve_rate, result.review_rate, result.decline_rate) > 0


costs_strategy = st.builds(
    Costs,
    gain_good_approved=st.floats(0, 10),
    loss_bad_approved=st.floats(0, 50),
    review_cost=st.floats(0, 5),
    value_declined=st.floats(-2, 2),
    review_catch_rate=st.floats(0, 1),
)


@settings(max_examples=150, deadline=None)
@given(
    data=st.lists(
        st.tuples(
            st.booleans(),
            st.sampled_from([0.0, 0.1, 0.2, 0.25, 0.5, 0.7, 0.99, 1.0]) | st.floats(0, 1),
        ),
        min_size=1,
        max_size=30,
    ),
    costs=costs_strategy,
)
def test_equals_brute_force(data: list[tuple[bool, float]], costs: Costs) -> None:
    bad = np.array([d[0] for d in data])
    s = np.array([d[1] for d in data])
    check(bad, s, costs)


def test_string_labels_and_input_errors() -> None:
    labels = np.array(["good", "bad", "good"])
    result = optimal_cutoffs(labels, [0.1, 0.9, 0.2], COSTS, positive_label="bad")
    assert result.expected_value == pytest.approx(2 / 3)  # approve goods, decline the bad
    with pytest.raises(ValueError, match="within"):
        optimal_cutoffs([0, 1], [0.1, 1.2], COSTS)
    with pytest.raises(ValueError, match="labels"):
        optimal_cutoffs([0, 1, 1], [0.1, 0.2], COSTS)
    with pytest.raises(ValueError, match="at least one"):
        optimal_cutoffs([], [], COSTS)


def test_apply_cutoffs_makes_a_new_valid_version() -> None:
    base = load_policy("credit_v1")
    new = apply_cutoffs(base, 0.2, 0.6, version="3")
    assert new.version == "3"
    assert [(b.decision, b.lower, b.upper) for b in new.bands] == [
        ("approve", 0.0, 0.2),
        ("review", 0.2, 0.6),
        ("decline", 0.6, 1.0),
    ]
    assert new.rules == base.rules and new.segments == base.segments
    no_review = apply_cutoffs(base, 0.4, 0.4, version="4")
    assert [b.decision for b in no_review.bands] == ["approve", "decline"]
    seg = apply_cutoffs(base, 0.1, 0.3, version="5", segment="renters")
    assert seg.bands == base.bands
    assert [b.upper for b in seg.segments[0].bands] == [0.1, 0.3, 1.0]
    features = pd.DataFrame({"Home": ["rent"], "Income": [1.0]})
    parts = decide_batch(seg, features, np.array([0.2]), None, [], ["c"])
    assert parts[0].decision == "review"
    with pytest.raises(ValueError):
        apply_cutoffs(base, 0.5, 0.4, version="6")
    with pytest.raises(ValueError, match="no segment"):
        apply_cutoffs(base, 0.1, 0.3, version="6", segment="nope")
    with pytest.raises(PolicyError, match="unknown decision 'refer'"):
        apply_cutoffs(base, 0.1, 0.3, version="6", decisions=("approve", "refer", "decline"))


def test_large_set_is_fast() -> None:
    rng = np.random.default_rng(1)
    n = 10_000
    bad = rng.random(n) < 0.25
    s = np.clip(rng.beta(2, 5, n) + 0.2 * bad, 0, 1)
    result = optimal_cutoffs(bad, s, COSTS)
    assert len(result.curve) > 9_000
    assert result.expected_value >= result.single_cut_value
