"""Known failures of the command line as one line each: what failed, where we looked, what next.

``decisionflow`` prints these instead of a traceback (``--log-level DEBUG`` still logs the
traceback). Anything not listed here is a bug and keeps its traceback.
"""

from __future__ import annotations

import re

__all__ = ["explain", "require_kafka"]

_STACK_HINT = "start the local stack with `make stack-up` (check it with `infra/stack status`)"


def _kafka_address() -> str:
    from workers.settings import SinkSettings

    return SinkSettings().kafka.bootstrap_servers


def _database_address() -> str:
    """The store URL with any password masked."""
    from workers.settings import SinkSettings

    url = SinkSettings().database_url.get_secret_value()
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def require_kafka(bootstrap_servers: str, timeout_s: float = 3.0) -> None:
    """Fail in seconds, not after the client's 30 s bootstrap timeout, when no listed Kafka
    address accepts a TCP connection (raises ``KafkaConnectionError``)."""
    import socket

    from kafka.errors import KafkaConnectionError

    for address in bootstrap_servers.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
                return
        except (OSError, ValueError):
            continue
    raise KafkaConnectionError(f"no TCP connection to {bootstrap_servers}")


def explain(exc: BaseException) -> str | None:
    """One line for a known failure, or None for an unexpected one."""
    from kafka.errors import KafkaConnectionError, KafkaTimeoutError, MetadataEmptyBrokerList
    from sqlalchemy.exc import OperationalError

    from models.data import DataError
    from models.registry import RegistryIntegrityError, UnknownModelError
    from models.spec import SpecError

    if isinstance(exc, SpecError):
        return f"{exc} (a spec is a packaged name or a path to a YAML file)"
    if isinstance(exc, UnknownModelError):
        return (
            f"{_first_line(exc)} (set DECISIONFLOW_REGISTRY_URL or --registry; "
            "`decisionflow models list` shows what is there; `make demo` trains a first model)"
        )
    if isinstance(exc, RegistryIntegrityError):
        return f"registry integrity check failed, refusing to load: {_first_line(exc)}"
    if isinstance(exc, KafkaConnectionError | KafkaTimeoutError | MetadataEmptyBrokerList):
        return (
            f"Kafka is not reachable at {_kafka_address()} ({type(exc).__name__}); "
            f"{_STACK_HINT}, or set DECISIONFLOW_KAFKA__BOOTSTRAP_SERVERS"
        )
    if isinstance(exc, OperationalError):
        return (
            f"the database at {_database_address()} is not reachable "
            f"({_first_line(exc.orig or exc)}); {_STACK_HINT}, or set DECISIONFLOW_DATABASE_URL"
        )
    if isinstance(exc, DataError):
        return f"{_first_line(exc)} (check --source and the spec's columns and label)"
    if isinstance(exc, FileNotFoundError):
        return f"file not found: {exc.filename or _first_line(exc)}"
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
