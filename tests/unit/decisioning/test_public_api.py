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
        "validate_event", "build_decisions", "assign_arms", "optimal_cutoffs", "apply_cutoffs",
        "diff_decisions", "feature_hash", "Event", "Decision", "Outcome", "DeadLetter",
        "EventError", "Policy", "PolicyError", "DecisionParts", "ArmConfig", "Costs",
    }  # fmt: skip
    assert expected <= set(decisioning.__all__)


#: Modules of the decision core: no ML framework, no models package (plain arrays in).
CORE = [
    "arms", "assemble", "audit", "conditions", "contract_files", "contracts", "decide",
    "policy", "thresholds", "validation",
]  # fmt: skip


def _import_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            roots.add((node.module or "").split(".")[0])
    return roots


def test_package_never_imports_runtime_adapters() -> None:
    for path in PACKAGE.glob("*.py"):
        assert not {"workers", "celery", "kafka", "confluent_kafka"} & _import_roots(path), path


def test_decision_core_needs_no_models_or_frameworks() -> None:
    for name in CORE:
        roots = _import_roots(PACKAGE / f"{name}.py")
        assert not {"models", "torch", "sklearn", "sqlalchemy"} & roots, name


def test_every_public_function_has_a_docstring() -> None:
    for name in decisioning.__all__:
        obj = getattr(decisioning, name)
        if callable(obj) and getattr(obj, "__module__", "").startswith("decisioning"):
            assert obj.__doc__, name
