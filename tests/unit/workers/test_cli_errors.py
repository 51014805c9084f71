"""Known CLI failures print one line (what, where, next step) and exit 2; bugs keep tracebacks."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from kafka.errors import KafkaConnectionError, KafkaTimeoutError
from sqlalchemy.exc import OperationalError

from devtools.launch import free_port
from models.registry import ModelRegistry, RegistryIntegrityError, UnknownModelError
from models.spec import SpecError
from workers.cli import main
from workers.cli_errors import explain


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str):  # type: ignore[no-untyped-def]
    """Run ``decisionflow ARGS`` in-process; returns (exit code, stderr)."""
    monkeypatch.setattr(sys, "argv", ["decisionflow", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code, capsys.readouterr().err


def assert_one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("decisionflow: error: ")
    return lines[0]


def test_unknown_spec(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(monkeypatch, capsys, "produce", "--spec", "nosuch", "--limit", "1")
    line = assert_one_line(err)
    assert code == 2 and "'nosuch'" in line and "credit_data" in line  # the specs there are


def test_missing_source_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "nope.csv"
    code, err = run_cli(monkeypatch, capsys, "produce", "--source", str(missing), "--limit", "1")
    assert code == 2 and str(missing) in assert_one_line(err)


def test_database_down_names_the_address_without_the_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url = f"postgresql+psycopg://analyst:s3cret@127.0.0.1:{free_port()}/decisionflow"
    monkeypatch.setenv("DECISIONFLOW_DATABASE_URL", url)
    code, err = run_cli(
        monkeypatch,
        capsys,
        "report",
        "--database-url",
        url,
        "--registry-url",
        str(tmp_path / "registry"),
        "--reports-dir",
        str(tmp_path / "reports"),
    )
    line = assert_one_line(err)
    assert code == 2 and "s3cret" not in err
    assert "analyst:***@127.0.0.1" in line and "make stack-up" in line


def test_unknown_model_names_the_registry(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    with pytest.raises(UnknownModelError) as info:
        registry.resolve("credit_data", 99)
    line = explain(info.value)
    assert line is not None and str(tmp_path / "registry") in line
    assert "decisionflow models list" in line


@pytest.mark.parametrize("error", [KafkaConnectionError("refused"), KafkaTimeoutError("30 s")])
def test_kafka_down_names_the_bootstrap_servers(
    monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    monkeypatch.setenv("DECISIONFLOW_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("DECISIONFLOW_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    line = explain(error)
    assert line is not None and "127.0.0.1:1" in line and "make stack-up" in line


def test_other_known_errors_have_a_line() -> None:
    assert "integrity" in (explain(RegistryIntegrityError("sha256 mismatch: model.pt")) or "")
    assert "spec" in (explain(SpecError("feature spec file not found: x.yaml")) or "")
    refused = OperationalError("SELECT 1", {}, Exception("connection refused"))
    assert "connection refused" in (explain(refused) or "")


def test_a_bug_keeps_its_traceback() -> None:
    assert explain(RuntimeError("unexpected")) is None
    assert explain(KeyError("x")) is None


def test_produce_with_kafka_down(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("DECISIONFLOW_KAFKA__BOOTSTRAP_SERVERS", address)
    monkeypatch.setenv("DECISIONFLOW_KAFKA_BOOTSTRAP_SERVERS", address)
    code, err = run_cli(monkeypatch, capsys, "produce", "--limit", "1")
    line = assert_one_line(err)
    assert code == 2 and address in line and "make stack-up" in line


def test_produce_passes_the_kafka_security_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`decisionflow produce` reaches a SASL/TLS cluster with the same settings as workers."""
    import workers.cli_errors
    import workers.producer

    seen: dict[str, object] = {}

    class Recorder:
        def __init__(self, bootstrap: object, **options: object) -> None:
            seen.update(options, bootstrap=bootstrap)

        def __enter__(self) -> Recorder:
            return self

        def __exit__(self, *_: object) -> None:
            return None

        def send(self, *_: object, **__: object) -> str:
            return "e"

    monkeypatch.setattr(workers.producer, "EventProducer", Recorder)
    monkeypatch.setattr(workers.cli_errors, "require_kafka", lambda _servers: None)
    monkeypatch.setenv("DECISIONFLOW_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("DECISIONFLOW_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("DECISIONFLOW_KAFKA__SASL_USERNAME", "producer-team")
    monkeypatch.setenv("DECISIONFLOW_KAFKA__SASL_PASSWORD", "s3cret")
    code, _ = run_cli(monkeypatch, capsys, "produce", "--limit", "1")
    assert code == 0
    assert seen["security_protocol"] == "SASL_SSL" and seen["sasl_mechanism"] == "SCRAM-SHA-512"
    assert seen["sasl_plain_username"] == "producer-team"
    assert seen["sasl_plain_password"] == "s3cret"


def test_produce_for_a_flow_streams_its_table_to_its_events_topic(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import workers.cli_errors
    import workers.producer

    seen: dict[str, object] = {}
    sent: list[dict[str, object]] = []

    class Recorder:
        def __init__(self, bootstrap: object, **options: object) -> None:
            seen.update(options)

        def __enter__(self) -> Recorder:
            return self

        def __exit__(self, *_: object) -> None:
            return None

        def send(self, entity_id: str, features: dict[str, object], **__: object) -> str:
            sent.append(features)
            return "e"

    monkeypatch.setattr(workers.producer, "EventProducer", Recorder)
    monkeypatch.setattr(workers.cli_errors, "require_kafka", lambda _servers: None)
    code, _ = run_cli(monkeypatch, capsys, "produce", "--flow", "mortgage", "--limit", "2")
    assert code == 0 and seen["topic"] == "events.mortgage"
    assert len(sent) == 2 and "lvrat" in sent[0] and "Amount" not in sent[0]
