"""Fixtures of the e2e tier: the stack's Kafka/PostgreSQL fixtures plus an isolated schema."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from decisioning import store
from tests.integration.conftest import (  # noqa: F401  (re-exported fixtures)
    bootstrap,
    database_url,
    group_id,
    make_topic,
    worker_settings,
)


@pytest.fixture
def pg_url(database_url: str) -> Iterator[str]:  # noqa: F811
    """The stack's PostgreSQL with a fresh schema first on the search path (dropped after)."""
    if not database_url.startswith("postgresql"):
        pytest.fail("the stack should provide PostgreSQL (DECISIONFLOW_DATABASE_URL)")
    schema = f"e2e_{uuid.uuid4().hex[:12]}"
    admin = store.make_engine(database_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in database_url else "?"
    yield f"{database_url}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()
