"""The deploy files' own worker command lines decide: the image's CMD and the StatefulSet's
command + args run (without Docker or Kubernetes) against the local stack with the environment
their runtime gives them; /metrics answers on a non-loopback-only bind and a decision lands.

Only what cannot exist here is replaced: the stack's Kafka address instead of the cluster's,
CPU instead of ``DECISIONFLOW_DEVICE=cuda``, a free metrics port, the test's own topics,
consumer group and registry.
"""

from __future__ import annotations

import sys
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from devtools.launch import ChildProcess, free_port
from models import paths
from models.data import load_frame
from models.registry import ModelRegistry
from models.signing import VERIFY_KEY_ENV, RegistryKeys, generate_key_pair
from models.spec import load_spec
from models.training import train_family
from tests.deployfiles import WorkerLaunch, dockerfile_worker, statefulset_worker
from tests.integration.streaming import CommittedReader, make_topics
from tests.integration.workerproc import wait_for
from workers.producer import EventProducer, events_from_frame

LAUNCHES: dict[str, Callable[[], WorkerLaunch]] = {
    "dockerfile-cmd": dockerfile_worker,
    "statefulset": statefulset_worker,
}


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> RegistryKeys:
    """A key pair of the test's own: the pod's mounted public key stands in for it."""
    private, public = generate_key_pair(tmp_path_factory.mktemp("keys"))
    return RegistryKeys(signing_key=private, verify_key=public)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, keys: RegistryKeys) -> Path:
    """A registry whose champion is named like the deploy files say (credit_data)."""
    spec = load_spec("credit_data")
    reg = ModelRegistry(tmp_path_factory.mktemp("registry"), keys=keys)
    version = reg.register(train_family("logreg", load_frame(spec), spec, {"C": 1.0}, seed=1))
    reg.promote(spec.name, version, "champion", reason="test setup")
    return Path(reg.root)


def _metrics(port: int) -> str:
    # 127.0.0.2 is loopback too, but a server bound to 127.0.0.1 only does not answer on it:
    # only a 0.0.0.0 bind (what probes and Prometheus need in a pod) does
    with urllib.request.urlopen(f"http://127.0.0.2:{port}/metrics", timeout=3) as resp:
        return str(resp.read().decode())


@pytest.mark.parametrize("source", sorted(LAUNCHES))
def test_the_deploy_command_line_decides_and_serves_metrics(
    source: str,
    bootstrap: str,
    make_topic: Callable[..., str],
    group_id: str,
    registry: Path,
    keys: RegistryKeys,
    tmp_path: Path,
) -> None:
    launch = LAUNCHES[source]()
    assert launch.argv[0] == "decisionflow", launch.argv
    argv = [str(Path(sys.executable).with_name("decisionflow")), *launch.argv[1:]]
    topics = make_topics(make_topic, partitions=2)
    port = free_port()
    env = {
        **launch.env,
        "PATH": str(Path(sys.executable).parent),
        "HOME": str(tmp_path),
        "DECISIONFLOW_HOME": str(tmp_path / "home"),
        "DECISIONFLOW_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "DECISIONFLOW_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "DECISIONFLOW_DEVICE": "cpu",
        "DECISIONFLOW_METRICS_PORT": str(port),
        "DECISIONFLOW_REGISTRY_URL": str(registry),
        VERIFY_KEY_ENV: str(keys.verify_key),
        "DECISIONFLOW_GROUP_ID": group_id,
        "DECISIONFLOW_TRANSACTIONAL_ID_PREFIX": f"{group_id}-{source}",
        **topics.env(),
    }
    # the stack's Redis address (a pod gets it from the Secret)
    env["DECISIONFLOW_RUN_DIR"] = str(paths.stack_dir())
    assert launch.env["DECISIONFLOW_METRICS_HOST"] == "0.0.0.0"
    worker = ChildProcess(f"{source}-{uuid.uuid4().hex[:6]}", argv, env, tmp_path)
    reader = CommittedReader(bootstrap, topics.decisions, topics.dlq)
    try:
        worker.wait_for_log("decision loop started", 120)
        assert "decisionflow_events_consumed_total" in _metrics(port)
        spec = load_spec("credit_data")
        rows = events_from_frame(
            load_frame(spec).head(5), spec.feature_names, spec.entity_key.column
        )
        with EventProducer(bootstrap, topic=topics.events) as producer:
            sent = [producer.send(entity, features) for entity, features in rows]

        def all_decided() -> bool:
            worker.check()  # a worker that died fails at once, with its log
            reader.poll()
            return reader.count(topics.decisions) >= len(sent)

        wait_for(all_decided, 90, "the decisions")
        decided = {d["event_id"] for d in reader.records[topics.decisions]}
        assert decided == set(sent)
        assert all(d["model_name"] == "credit_data" for d in reader.records[topics.decisions])
        text = _metrics(port)
        assert _sample(text, "decisionflow_decisions_total") >= len(sent)
    finally:
        reader.close()
        assert worker.stop(60) == 0, worker.log_text()[-3000:]


def _sample(text: str, name: str) -> float:
    """Sum of a metric's samples in a Prometheus text exposition."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )
