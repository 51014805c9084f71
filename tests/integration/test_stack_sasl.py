"""The stack's SASL_PLAINTEXT / SCRAM-SHA-512 listener (confluent-kafka clients): the stack's
user, with the credentials from ``<run>/kafka/scram.env``, produces and consumes; a wrong
password or an unknown user is refused. The file is found in the run dir like ``stack.env``."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Producer

from models import paths
from tests.integration.sasl import KAFKA_VARS, sasl_settings, scram_env_file
from workers.settings import KafkaSettings

REPO = Path(__file__).resolve().parents[2]


def auth_errors(conf: dict[str, Any], timeout: float = 20) -> list[KafkaError]:
    """The errors a producer with ``conf`` reports until one says authentication failed."""
    errors: list[KafkaError] = []
    producer = Producer({**conf, "error_cb": errors.append, "log_level": 0})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        producer.poll(0.2)
        if any(e.code() == KafkaError._AUTHENTICATION for e in errors):
            break
    return errors


@pytest.fixture(scope="module")
def sasl() -> KafkaSettings:
    return sasl_settings(paths.stack_dir())


def test_credentials_file_is_private_and_complete(sasl: KafkaSettings, bootstrap: str) -> None:
    mode = scram_env_file(paths.stack_dir()).stat().st_mode & 0o777
    assert mode == 0o600, oct(mode)
    assert sasl.security_protocol == "SASL_PLAINTEXT"
    assert sasl.sasl_mechanism == "SCRAM-SHA-512"
    assert sasl.sasl_username == "decisionflow"
    assert sasl.sasl_password is not None and len(sasl.sasl_password.get_secret_value()) >= 24
    assert set(sasl.bootstrap_servers.split(",")).isdisjoint(bootstrap.split(","))


def test_env_file_points_worker_settings_at_the_listener(sasl: KafkaSettings) -> None:
    """DECISIONFLOW_ENV_FILE=<run>/kafka/scram.env switches a process to SASL: the file's flat
    bootstrap variable wins over the PLAINTEXT one in stack.env. Checked in a fresh
    interpreter, as a worker would start (the settings read the variable at import)."""
    run = paths.stack_dir()
    env = {k: v for k, v in os.environ.items() if k not in KAFKA_VARS}
    env |= {"DECISIONFLOW_RUN_DIR": str(run), "DECISIONFLOW_ENV_FILE": str(scram_env_file(run))}
    code = (  # prints the password's digest only
        "import hashlib\n"
        "from workers.settings import WorkerSettings\n"
        "k = WorkerSettings().kafka\n"
        "pw = k.sasl_password.get_secret_value().encode() if k.sasl_password else b''\n"
        "print(k.bootstrap_servers, k.security_protocol, k.sasl_mechanism, k.sasl_username,"
        " hashlib.sha256(pw).hexdigest())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    pw = sasl.sasl_password.get_secret_value().encode() if sasl.sasl_password else b"?"
    digest = hashlib.sha256(pw).hexdigest()
    expected = f"{sasl.bootstrap_servers} SASL_PLAINTEXT SCRAM-SHA-512 decisionflow {digest}"
    assert out.stdout.strip() == expected


def test_right_credentials_produce_and_consume(
    sasl: KafkaSettings, make_topic: Callable[..., str], group_id: str
) -> None:
    topic = make_topic("sasl")
    conf = sasl.confluent_options()
    producer = Producer({**conf, "acks": "all"})
    sent = [f"sasl-{i}-{uuid.uuid4().hex[:6]}".encode() for i in range(10)]
    for value in sent:
        producer.produce(topic, value)
    assert producer.flush(30) == 0, "records left unsent over SASL"

    consumer = Consumer({**conf, "group.id": group_id, "auto.offset.reset": "earliest"})
    got: list[bytes] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        while len(got) < len(sent) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            payload = msg.value() if msg is not None and msg.error() is None else None
            if payload is not None:
                got.append(payload)
    finally:
        consumer.close()
    assert got == sent


@pytest.mark.parametrize(
    "override",
    [{"sasl.password": "not-the-password"}, {"sasl.username": "intruder"}],
    ids=["wrong-password", "unknown-user"],
)
def test_wrong_credentials_are_refused(sasl: KafkaSettings, override: dict[str, str]) -> None:
    errors = auth_errors({**sasl.confluent_options(), **override})
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), [e.str() for e in errors]
