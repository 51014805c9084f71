"""The local stack's SASL/SCRAM client settings for integration tests: where the stack keeps
them (``<run>/kafka/scram.env``) and the variables that would override them."""

from __future__ import annotations

from pathlib import Path

import pytest
from dotenv import dotenv_values

from workers.settings import KafkaSettings

__all__ = ["FIELDS", "KAFKA_VARS", "NESTED", "sasl_settings", "scram_env_file"]

NESTED = "DECISIONFLOW_KAFKA__"
FIELDS = ("BOOTSTRAP_SERVERS", "SECURITY_PROTOCOL", "SASL_MECHANISM", "SASL_USERNAME")
# what a shell could set that would override the files under test
KAFKA_VARS = {
    "DECISIONFLOW_ENV_FILE",
    "DECISIONFLOW_KAFKA_BOOTSTRAP_SERVERS",
    f"{NESTED}SASL_PASSWORD",
    *(NESTED + f for f in FIELDS),
}


def scram_env_file(run: Path) -> Path:
    """``<run>/kafka/scram.env``; fails the test when the stack has no SASL listener yet."""
    f = run / "kafka" / "scram.env"
    if not f.exists():
        pytest.fail(
            f"no {f}: this stack was started before it had a SASL listener; "
            "restart it (`infra/stack down && infra/stack up`)"
        )
    return f


def sasl_settings(run: Path) -> KafkaSettings:
    """The client settings ``scram.env`` holds, read straight from the file (so variables in
    the test's own environment cannot mix in)."""
    values = dotenv_values(scram_env_file(run))
    fields = {k.removeprefix(NESTED).lower(): v for k, v in values.items() if k.startswith(NESTED)}
    return KafkaSettings.model_validate(fields)
