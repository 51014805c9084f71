"""Fixtures for tests that talk to the real local stack started by ``infra/stack up``.

Each test gets its own uuid-named topics and consumer group, so tests never see each
other's records and can run against a stack someone else also uses.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka.admin import KafkaAdminClient, NewTopic
from sqlalchemy import text

from models import paths
from storage import store
from workers.kafka_client import CLIENTS, ClientName
from workers.settings import SinkSettings, WorkerSettings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def worker_settings() -> WorkerSettings:
    settings = WorkerSettings()
    env = paths.stack_dir() / "stack.env"
    if not env.exists():
        pytest.fail("the local stack is not up: run `make stack-up` (make test does it)")
    return settings


@pytest.fixture(scope="session")
def bootstrap(worker_settings: WorkerSettings) -> str:
    return worker_settings.kafka.bootstrap_servers


@pytest.fixture(scope="session")
def database_url() -> str:
    return SinkSettings().database_url.get_secret_value()


@pytest.fixture
def make_topic(bootstrap: str) -> Iterator[Callable[..., str]]:
    """Create uniquely named topics for one test; deleted afterwards."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    created: list[str] = []

    def make(prefix: str = "t", partitions: int = 1) -> str:
        name = f"test.{prefix}.{uuid.uuid4().hex[:12]}"
        admin.create_topics([NewTopic(name, partitions, 1)])
        created.append(name)
        return name

    yield make
    if created:
        admin.delete_topics(created)
    admin.close()


@pytest.fixture(params=CLIENTS)
def kafka_client(request: pytest.FixtureRequest) -> ClientName:
    """Each Kafka client backend in turn (DECISIONFLOW_KAFKA_CLIENT)."""
    client: ClientName = request.param
    return client


@pytest.fixture
def group_id() -> str:
    return f"test-group-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def pg_url(database_url: str) -> Iterator[str]:
    """The stack's PostgreSQL with a fresh schema first on the search path (dropped after)."""
    if not database_url.startswith("postgresql"):
        pytest.fail("the stack should provide PostgreSQL (DECISIONFLOW_DATABASE_URL)")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = store.make_engine(database_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in database_url else "?"
    yield f"{database_url}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()
