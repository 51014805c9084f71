"""Settings: env prefix, nesting, frozen, secrets hidden, SASL options passed through."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from workers.settings import SinkSettings, WorkerSettings


def test_env_prefix_nesting_and_secret_hiding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DECISIONFLOW_MAX_BATCH_SIZE", "123")
    monkeypatch.setenv("DECISIONFLOW_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("DECISIONFLOW_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("DECISIONFLOW_KAFKA__SASL_USERNAME", "svc")
    monkeypatch.setenv("DECISIONFLOW_KAFKA__SASL_PASSWORD", "s3cr3t-value")
    s = WorkerSettings(_env_file=None)
    assert s.max_batch_size == 123
    assert "s3cr3t-value" not in repr(s) and "s3cr3t-value" not in str(s.model_dump())
    opts = s.kafka.client_options()
    assert opts["security_protocol"] == "SASL_SSL"
    assert opts["sasl_mechanism"] == "SCRAM-SHA-512"
    assert opts["sasl_plain_username"] == "svc"
    assert opts["sasl_plain_password"] == "s3cr3t-value"


def test_stack_flat_bootstrap_is_folded_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DECISIONFLOW_KAFKA_BOOTSTRAP_SERVERS", "10.0.0.1:9092,10.0.0.2:9092")
    s = WorkerSettings(_env_file=None)
    assert s.kafka.client_options()["bootstrap_servers"] == ["10.0.0.1:9092", "10.0.0.2:9092"]


def test_frozen_and_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    s = WorkerSettings(_env_file=None)
    with pytest.raises(ValidationError):
        s.max_batch_size = 5  # type: ignore[misc]
    monkeypatch.setenv("DECISIONFLOW_MAX_BATCH_SIZE", "0")
    with pytest.raises(ValidationError, match="max_batch_size"):
        WorkerSettings(_env_file=None)


def test_database_url_is_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DECISIONFLOW_DATABASE_URL", "postgresql://u:pw-123@db/x")
    s = SinkSettings(_env_file=None)
    assert "pw-123" not in repr(s)
    assert s.database_url.get_secret_value().endswith("@db/x")


def test_sink_never_joins_the_decision_workers_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DECISIONFLOW_GROUP_ID", "workers-group")
    assert WorkerSettings(_env_file=None).group_id == "workers-group"
    assert SinkSettings(_env_file=None).sink_group_id != "workers-group"


def test_scoring_timeout_must_fit_the_poll_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DECISIONFLOW_SCORE_TIMEOUT_S", "200")
    with pytest.raises(ValidationError, match="rebalance storms"):
        WorkerSettings(_env_file=None)


def test_the_transaction_timeout_must_outlast_the_slowest_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a transaction the broker aborts under a slow batch would fail and be retried forever
    monkeypatch.setenv("DECISIONFLOW_SCORE_TIMEOUT_S", "30")
    with pytest.raises(ValidationError, match="transaction_timeout_ms"):
        WorkerSettings(_env_file=None)
    monkeypatch.setenv("DECISIONFLOW_TRANSACTION_TIMEOUT_MS", "32000")
    assert WorkerSettings(_env_file=None).transaction_timeout_ms == 32_000


def test_static_membership_sessions_are_short_and_heartbeats_fit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = WorkerSettings(_env_file=None)
    assert s.static_membership and s.session_timeout_ms <= 10_000
    monkeypatch.setenv("DECISIONFLOW_HEARTBEAT_INTERVAL_MS", "3000")
    with pytest.raises(ValidationError, match="heartbeat_interval_ms"):
        WorkerSettings(_env_file=None)


def test_registry_keys_are_nested_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from models.signing import RegistryKeys
    from workers.settings import registry_keys

    monkeypatch.setenv("DECISIONFLOW_REGISTRY_URL", "/srv/registry")
    monkeypatch.setenv("DECISIONFLOW_REGISTRY__VERIFY_KEY", "/run/secrets/registry_verify.pem")
    monkeypatch.delenv("DECISIONFLOW_REGISTRY__SIGNING_KEY", raising=False)
    s = WorkerSettings(_env_file=None)
    assert s.registry_url == "/srv/registry"
    assert s.registry.signing_key is None
    # a worker: the public key only, never a generated dev pair
    want = RegistryKeys(verify_key=Path("/run/secrets/registry_verify.pem"))
    assert s.registry.keys() == want == registry_keys()


@pytest.mark.parametrize(
    ("variable", "settings"),
    [
        ("DECISIONFLOW_GROUP_ID", WorkerSettings),
        ("DECISIONFLOW_TRANSACTIONAL_ID_PREFIX", WorkerSettings),
        ("DECISIONFLOW_SINK_GROUP_ID", SinkSettings),
    ],
)
def test_an_empty_group_or_transactional_id_is_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, settings: type[WorkerSettings | SinkSettings]
) -> None:
    """An empty group id would join another group and re-decide every event from the start."""
    monkeypatch.setenv(variable, "")
    with pytest.raises(ValidationError):
        settings(_env_file=None)  # type: ignore[call-arg]
