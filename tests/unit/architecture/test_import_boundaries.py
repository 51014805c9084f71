"""Dependencies point one way: models <- decisioning <- storage/analytics <- pipelines <- workers
<- devtools, and the DAGs use only public names. Static: lazy imports inside functions count."""

from __future__ import annotations

import subprocess
import sys

import pytest

import workers
from tests.importscan import imports_of

# what the pure decision core must never import (model behaviour, storage, rendering, runtime)
CORE_FORBIDDEN = (
    "sqlalchemy",
    "psycopg",
    "matplotlib",
    "jinja2",
    "sklearn",
    "torch",
    "kafka",
    "confluent_kafka",
    "celery",
    "models",
    "storage",
    "analytics",
    "pipelines",
    "workers",
    "devtools",
)
# the lower layers never import the ones above them
LAYERS = {
    "models": ("decisioning", "storage", "analytics", "pipelines", "workers", "devtools", "dags"),
    "decisioning": CORE_FORBIDDEN,
    "storage": ("analytics", "pipelines", "workers", "devtools", "dags"),
    "analytics": ("pipelines", "workers", "devtools", "dags"),
    "pipelines": ("workers", "devtools", "dags"),
    "workers": ("devtools", "dags", "benchmarks", "tests"),
}


def _hits(module: str, forbidden: tuple[str, ...]) -> bool:
    return any(module == f or module.startswith(f + ".") for f in forbidden)


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_a_package_imports_only_what_lies_below_it(package: str) -> None:
    bad = [i for i in imports_of(package) if _hits(i.module, LAYERS[package])]
    assert bad == []


def test_the_decision_core_loads_without_model_storage_or_rendering_code() -> None:
    code = (
        "import sys, pkgutil, importlib, decisioning\n"
        "for m in pkgutil.walk_packages(decisioning.__path__, 'decisioning.'):\n"
        "    importlib.import_module(m.name)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {CORE_FORBIDDEN!r})\n"
        "print('LOADED=' + ','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert [ln for ln in out.splitlines() if ln.startswith("LOADED=")] == ["LOADED="]


def test_dags_use_only_the_public_names_of_workers() -> None:
    bad = [
        i
        for i in imports_of("dags")
        if i.module.startswith("workers.")
        or (i.module == "workers" and not set(i.names) <= set(workers.__all__))
    ]
    assert bad == []


def test_the_boundary_check_sees_lazy_imports() -> None:
    """The scan is not fooled by an import inside a function body."""
    lazy = [i for i in imports_of("dags") if i.module == "workers"]
    assert lazy, "the DAGs' task bodies import workers' public names lazily"
