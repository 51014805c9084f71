"""The public names of decisioning are pinned: a change here is an API change."""

from __future__ import annotations

import ast
from pathlib import Path

import decisioning

PACKAGE = Path(decisioning.__file__).parent


def test_all_names_resolve_and_are_sorted() -> None:
    for name in decisioning.__all__:
        assert hasattr(decisioning, name), name
    assert len(set(decisioning.__all__)) == len(decisioning.__all__)


def test_pinned_entry_points() -> None:
    expected = {
        "parse_event", "dead_letter", "encode_record", "load_policy", "decide_batch",
        "events_frame", "build_decisions", "assign_arms", "optimal_cutoffs", "apply_cutoffs",
        "diff_decisions", "feature_hash", "Event", "Decision", "Outcome", "DeadLetter",
        "EventError", "Policy", "PolicyError", "DecisionParts", "ArmConfig", "Costs",
    }  # fmt: skip
    assert expected <= set(decisioning.__all__)


def test_no_runtime_imports_of_workers_or_models() -> None:
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                roots = [(node.module or "").split(".")[0]]
            else:
                continue
            assert not {"workers", "models", "torch", "celery", "kafka"} & set(roots), path


def test_every_public_function_has_a_docstring() -> None:
    for name in decisioning.__all__:
        obj = getattr(decisioning, name)
        if callable(obj) and getattr(obj, "__module__", "").startswith("decisioning"):
            assert obj.__doc__, name
