"""Fixtures of the e2e tier: the stack's Kafka/PostgreSQL fixtures of the integration tier.

The tier also needs system programs that only the README's test command installs (`make test`
runs `make browser`). A machine without them fails here, before any test runs, naming the
command that should have installed them: a CI image that already had them cannot hide a
missing install step from the next fresh machine.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator

import pytest

from devtools.airflow_local import DagRunner
from tests.integration.conftest import (  # noqa: F401  (re-exported fixtures)
    bootstrap,
    database_url,
    group_id,
    make_topic,
    pg_url,
    worker_settings,
)


@pytest.fixture
def airflow_runner() -> Iterator[Callable[[dict[str, str]], DagRunner]]:
    """Starts the test's Airflow child (:class:`DagRunner`: migrates the DB at once, then runs
    the ``dag.test()`` calls the test asks for); ended after the test."""
    runners: list[DagRunner] = []

    def start(env: dict[str, str]) -> DagRunner:
        runners.append(DagRunner(env))
        return runners[-1]

    yield start
    for runner in runners:
        runner.close()


# program -> the install step of `make test` that provides it
SYSTEM_PROGRAMS = {"chromium": "make browser"}  # infra/install-browser


def missing_programs(which: object = shutil.which) -> list[str]:
    """One line per system program the e2e tier needs and this machine lacks."""
    return [
        f"{name} is missing: `make test` installs it (`{step}`); run that, or `make test`"
        for name, step in SYSTEM_PROGRAMS.items()
        if not which(name)  # type: ignore[operator]
    ]


def pytest_configure(config: pytest.Config) -> None:
    if problems := missing_programs():
        raise pytest.UsageError("e2e tier cannot run:\n  " + "\n  ".join(problems))
