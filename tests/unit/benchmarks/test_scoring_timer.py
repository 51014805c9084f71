"""How the in-process engine stages are timed: the median of rounds taken in turn."""

from __future__ import annotations

import pytest

import benchmarks.scoring as scoring

pytestmark = pytest.mark.unit


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_each_stage_is_the_median_of_rounds_taken_in_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(scoring.time, "perf_counter", clock)
    calls: list[str] = []
    # per-call seconds: the warm-up call, then rounds 1-3 (3 calls each; a slow spell in 2)
    durations = {"a": [0.0, 1.0, 10.0, 2.0], "b": [0.0, 3.0, 30.0, 4.0]}

    def stage(name: str) -> scoring.StageFn:
        def fn() -> None:
            calls.append(name)
            n = calls.count(name)  # 1: warm-up; 2-4: round 1; 5-7: round 2; 8-10: round 3
            clock.now += durations[name][0 if n == 1 else (n - 2) // 3 + 1]

        return fn

    def broken() -> None:
        raise KeyError("no such step")

    stages = {"a": stage("a"), "b": stage("b"), "gone": broken}
    seconds, errors = scoring.time_stages(stages, 0.0, rounds=3)
    assert seconds == {"a": 2.0, "b": 4.0}  # not the slow spell's 10 and 30
    assert errors == {"gone": "KeyError: 'no such step'"}
    # warm-ups, then the rounds go a, b, a, b, a, b (3 calls each)
    assert calls == ["a", "b"] + (["a"] * 3 + ["b"] * 3) * 3
