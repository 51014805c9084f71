"""Where each Kafka broker of the stack lives and listens, and how many brokers there are.

One broker (the default) keeps the original layout: ``<run>/kafka`` and the ports
``DECISIONFLOW_KAFKA_PORT`` (PLAINTEXT, 19092), ``DECISIONFLOW_KAFKA_CONTROLLER_PORT`` (19093)
and ``DECISIONFLOW_KAFKA_SASL_PORT`` (SASL_PLAINTEXT/SCRAM, 19095). With N brokers
(``infra/stack up --brokers N``) broker i (1..N, also its KRaft node id) lives in
``<run>/kafka-i`` and listens on each of those ports + (i - 1) * ``DECISIONFLOW_KAFKA_PORT_STEP``
(default 10: broker 2 on 19102/19103/19105, broker 3 on 19112/19113/19115).

``<run>/kafka`` also holds the cluster-wide files: ``brokers`` (the count ``up --brokers``
asked for last, which ``status``, ``down``, ``logs``, ``env`` and a plain ``up`` use) and
``scram.env`` (the SASL client settings).
"""

from __future__ import annotations

import base64
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from .common import HOST, PORTS, RUN

KAFKA_DIR = RUN / "kafka"
COUNT_FILE = KAFKA_DIR / "brokers"
PORT_STEP = int(os.environ.get("DECISIONFLOW_KAFKA_PORT_STEP", "10"))
MAX_BROKERS = 9


@dataclass(frozen=True)
class Broker:
    """Broker ``node`` (1-based, its KRaft node id) of a cluster of ``count`` brokers."""

    node: int
    count: int

    @property
    def name(self) -> str:
        """Its folder and pid file name: ``kafka`` alone, ``kafka-<node>`` in a cluster."""
        return "kafka" if self.count == 1 else f"kafka-{self.node}"

    @property
    def dir(self) -> Path:
        return RUN / self.name

    def _port(self, base: str) -> int:
        return PORTS[base] + (self.node - 1) * PORT_STEP

    @property
    def port(self) -> int:
        """The PLAINTEXT client (and inter-broker) port."""
        return self._port("kafka")

    @property
    def controller_port(self) -> int:
        return self._port("controller")

    @property
    def sasl_port(self) -> int:
        """The SASL_PLAINTEXT (SCRAM-SHA-512) client port."""
        return self._port("kafka_sasl")

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def sasl_address(self) -> str:
        return f"{HOST}:{self.sasl_port}"


def remembered_count() -> int:
    """The broker count of the last ``up --brokers N`` in this run dir (1 when never set)."""
    try:
        n = int(COUNT_FILE.read_text().strip())
    except (OSError, ValueError):
        return 1
    return n if 1 <= n <= MAX_BROKERS else 1


def remember_count(n: int) -> None:
    KAFKA_DIR.mkdir(parents=True, exist_ok=True)
    COUNT_FILE.write_text(f"{n}\n")


def cluster(count: int | None = None) -> list[Broker]:
    """The brokers of a ``count``-broker cluster (default: the remembered count)."""
    n = remembered_count() if count is None else count
    return [Broker(i, n) for i in range(1, n + 1)]


def broker(node: int) -> Broker:
    """Broker ``node`` of the remembered cluster; exits with a message when there is none."""
    brokers = cluster()
    if not 1 <= node <= len(brokers):
        raise SystemExit(f"[stack] no broker {node}: this stack has {len(brokers)} broker(s)")
    return brokers[node - 1]


def bootstrap(brokers: list[Broker]) -> str:
    """The PLAINTEXT bootstrap list, comma-separated."""
    return ",".join(b.address for b in brokers)


def sasl_bootstrap(brokers: list[Broker]) -> str:
    return ",".join(b.sasl_address for b in brokers)


def replication(count: int) -> tuple[int, int]:
    """(replication factor, min.insync.replicas) for a cluster of ``count`` brokers:
    1/1 alone, 3/2 from three brokers on (acks=all then survives one broker down)."""
    rf = min(3, count)
    return rf, max(1, rf - 1)


def kafka_uuid() -> str:
    """A random id in Kafka's Uuid form (cluster and directory ids): 16 bytes, base64url,
    unpadded, never starting with '-' (as ``StorageTool random-uuid`` makes them)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text
