"""The stack's SASL/SCRAM user: a random password made once, kept in ``<run>/kafka/scram.env``
(mode 0600, never printed), registered at format time (``--add-scram``) or, on a cluster
formatted before, through the admin API; and a login check on the SASL_PLAINTEXT listener.

``scram.env`` holds the client settings (``workers/settings.py`` KafkaSettings) for that
listener, so ``DECISIONFLOW_ENV_FILE=<run>/kafka/scram.env`` points every process at it. The
flat ``DECISIONFLOW_KAFKA_BOOTSTRAP_SERVERS`` is in it too: it overrides the PLAINTEXT one in
``stack.env``, which the settings would otherwise fold in over the nested field.
"""

from __future__ import annotations

import os
import secrets

from .common import log
from .kafka_layout import KAFKA_DIR, Broker, bootstrap, sasl_bootstrap

USER = "decisionflow"
MECHANISM = "SCRAM-SHA-512"
ITERATIONS = 8192
ENV_FILE = KAFKA_DIR / "scram.env"
_PASSWORD_KEY = "DECISIONFLOW_KAFKA__SASL_PASSWORD"


def _read_env() -> dict[str, str]:
    try:
        lines = ENV_FILE.read_text().splitlines()
    except OSError:
        return {}
    return dict(ln.split("=", 1) for ln in lines if "=" in ln and not ln.startswith("#"))


def password() -> str:
    """The SCRAM password: the one in ``scram.env``, else a new random one (written now)."""
    if pw := _read_env().get(_PASSWORD_KEY):
        return pw
    pw = secrets.token_urlsafe(24)  # [A-Za-z0-9_-]: safe inside --add-scram's [k=v,...]
    _write({_PASSWORD_KEY: pw})
    return pw


def write_env(brokers: list[Broker], pw: str) -> None:
    """``scram.env`` for this cluster's SASL listeners (rewritten on each start)."""
    servers = sasl_bootstrap(brokers)
    _write(
        {
            "DECISIONFLOW_KAFKA_BOOTSTRAP_SERVERS": servers,
            "DECISIONFLOW_KAFKA__BOOTSTRAP_SERVERS": servers,
            "DECISIONFLOW_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "DECISIONFLOW_KAFKA__SASL_MECHANISM": MECHANISM,
            "DECISIONFLOW_KAFKA__SASL_USERNAME": USER,
            _PASSWORD_KEY: pw,
        }
    )


def _write(values: dict[str, str]) -> None:
    """Replace ``scram.env`` atomically, created 0600 (the mode is forced on old files too)."""
    KAFKA_DIR.mkdir(parents=True, exist_ok=True)
    tmp = ENV_FILE.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write("# the stack's SASL/SCRAM listener (secret: keep 0600)\n")
        f.writelines(f"{k}={v}\n" for k, v in values.items())
    tmp.replace(ENV_FILE)


def format_arg(pw: str) -> list[str]:
    """``kafka-storage format`` arguments that put the user into a new cluster's metadata."""
    return ["--add-scram", f"{MECHANISM}=[name={USER},password={pw}]"]


def redact(text: str, pw: str) -> str:
    return text.replace(pw, "***")


def upsert(brokers: list[Broker], pw: str) -> None:
    """Create or reset the user's credential through the admin API (PLAINTEXT listener): the
    way an already formatted cluster gets it, and keeps it equal to ``scram.env``."""
    from kafka.admin import KafkaAdminClient, ScramMechanism, UserScramCredentialUpsertion

    admin = KafkaAdminClient(bootstrap_servers=bootstrap(brokers).split(","))
    try:
        change = UserScramCredentialUpsertion(USER, ScramMechanism.SCRAM_SHA_512, pw, ITERATIONS)
        errors = admin.alter_user_scram_credentials([change])
    finally:
        admin.close()
    if errors.get(USER):
        raise SystemExit(f"[stack] could not set the SCRAM credential of {USER}: {errors[USER]}")
    log(f"SCRAM credential of user {USER} set through the admin API")


def login_ok(brokers: list[Broker], pw: str) -> bool:
    """Whether every broker's SASL listener lets the user in (a metadata request each)."""
    from confluent_kafka.admin import AdminClient

    for b in brokers:
        admin = AdminClient(
            {
                "bootstrap.servers": b.sasl_address,
                "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": MECHANISM,
                "sasl.username": USER,
                "sasl.password": pw,
                "log_level": 0,  # refusals while the credential propagates are expected
            }
        )
        try:
            admin.list_topics(timeout=5)
        except Exception:
            return False
    return True
