"""Every Kafka client of the project works over the stack's SASL/SCRAM listener:
`decisionflow produce`, the decide loop (each client backend), replay's reader, outcomes and
the sink. Their only address is the SASL listener's, so a client that dropped the security
settings would fail to connect (topics are created over PLAINTEXT by the fixture only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from models import paths
from storage import store
from tests.integration.sasl import KAFKA_VARS, sasl_settings, scram_env_file
from tests.integration.streaming import deciding, make_topics
from tests.integration.workerproc import wait_for
from workers.kafka_client import ClientName
from workers.replay import read_topic
from workers.settings import KafkaSettings, SinkSettings, WorkerSettings
from workers.sink import DecisionSink, publish_outcomes

N = 20
REPO = Path(__file__).resolve().parents[2]


def _decisions(sasl: KafkaSettings, topic: str) -> list[bytes]:
    opts = sasl.client_options()
    bootstrap = opts.pop("bootstrap_servers")
    opts.pop("client_id", None)
    return [r.value for r in read_topic(bootstrap, topic, 1000, **opts) if r.value]


def test_the_project_clients_speak_sasl(
    make_topic: Callable[..., str], group_id: str, kafka_client: ClientName, tmp_path: Path
) -> None:
    run = paths.stack_dir()
    sasl = sasl_settings(run)
    topics = make_topics(make_topic, partitions=2)
    # no env files, and no PLAINTEXT address from the environment: only the SASL listener
    only_sasl: dict[str, Any] = {
        "_env_file": None,
        "DECISIONFLOW_KAFKA_BOOTSTRAP_SERVERS": sasl.bootstrap_servers,
    }

    env = {k: v for k, v in os.environ.items() if k not in KAFKA_VARS}
    env |= {"DECISIONFLOW_RUN_DIR": str(run), "DECISIONFLOW_ENV_FILE": str(scram_env_file(run))}
    produce = [sys.executable, "-m", "workers.cli", "produce", "--limit", str(N)]
    out = subprocess.run(
        [*produce, "--topic", topics.events, "--id-prefix", f"{group_id}-"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-2000:]

    settings = WorkerSettings(
        kafka=sasl,
        topics=topics,
        group_id=group_id,
        transactional_id_prefix=group_id,
        kafka_client=kafka_client,
        dedupe_window_s=0,
        max_wait_ms=20,
        **only_sasl,
    )
    with deciding(settings, f"sasl-{group_id[-6:]}"):
        wait_for(lambda: len(_decisions(sasl, topics.decisions)) >= N, 90, "decisions over SASL")
    decided = [d.decode() for d in _decisions(sasl, topics.decisions)]
    assert len(decided) == N

    url = f"sqlite:///{tmp_path / 'store.db'}"
    sink_settings = SinkSettings(
        kafka=sasl,
        topics=topics,
        sink_group_id=group_id,
        database_url=SecretStr(url),
        **only_sasl,
    )
    labels = {d["event_id"]: (d["entity_id"], "good") for d in (json.loads(x) for x in decided)}
    assert publish_outcomes(sink_settings, labels) == N
    db = store.make_engine(url)
    stats = DecisionSink(sink_settings, db).run(until_idle_s=3)
    db.dispose()
    assert stats.written["decisions"] == N and stats.written["outcomes"] == N
