"""Fixtures of the e2e tier: the stack's Kafka/PostgreSQL fixtures of the integration tier."""

from tests.integration.conftest import (  # noqa: F401  (re-exported fixtures)
    bootstrap,
    database_url,
    group_id,
    make_topic,
    pg_url,
    worker_settings,
)
