"""Two decision flows in one deployment, end to end: credit applications (modeldata's
credit_data) and mortgage applications (AER's HMDA table).

The retrain DAG trains each flow; training the mortgage flow leaves the credit champion and
its drift reference untouched. The same two Celery workers serve both flows
(``DECISIONFLOW_FLOWS``); the sink lands both; the evaluate DAG measures each flow on its own
decisions and outcomes and writes its reports under its own folder.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import yaml
from pydantic import SecretStr

from decisioning.flow import load_flow
from models.data import load_frame
from models.registry import ModelRegistry
from models.spec import load_spec
from storage import store
from tests.e2e.airflow_harness import DagRunner, make_env
from tests.integration.streaming import CommittedReader, make_topics
from tests.integration.workerproc import start_test_worker, stop_workers, wait_for, worker_env
from workers.producer import EventProducer, events_from_frame
from workers.settings import SinkSettings, Topics
from workers.sink import DecisionSink, labels_for_decisions, publish_outcomes

SUCCESS = "success"
EVENTS = {"credit_data": 300, "mortgage": 200}


def _flow_file(tmp: Path, shipped: str, topics: Topics) -> str:
    """The shipped flow, on this test's own topics."""
    flow = load_flow(shipped).model_dump(exclude_none=True)
    flow["topics"] = {k: v for k, v in topics.model_dump().items() if v}
    path = tmp / f"{shipped}.flow.yaml"
    path.write_text(yaml.safe_dump(flow))
    return str(path)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_two_flows_are_trained_served_and_measured_apart(
    tmp_path: Path,
    bootstrap: str,
    make_topic: Callable[..., str],
    group_id: str,
    pg_url: str,
    airflow_runner: Callable[[dict[str, str]], DagRunner],
) -> None:
    env = make_env(tmp_path, pg_url)
    env["DECISIONFLOW_POLICIES_DIR"] = str(tmp_path / "policies")
    airflow = airflow_runner(env)  # migrates the DB meanwhile; every DAG run below in it
    topics = {name: make_topics(make_topic, partitions=2) for name in EVENTS}
    flows = {name: _flow_file(tmp_path, name, topics[name]) for name in EVENTS}
    registry = ModelRegistry(env["DECISIONFLOW_REGISTRY_URL"])
    reference = Path(env["DECISIONFLOW_REFERENCE_DIR"])

    # ---- each flow trained by the retrain DAG; flow B never touches flow A's champion
    credit = airflow.run(
        "decisionflow_retrain", {"flow": flows["credit_data"], "families": ["logreg"]}
    )
    assert credit["state"] == SUCCESS, credit["log"][-4000:]
    credit_ref = _digest(reference / "credit_data.parquet")
    credit_history = registry.history("credit_data")
    mortgage = airflow.run(
        "decisionflow_retrain", {"flow": flows["mortgage"], "families": ["logreg"]}
    )
    assert mortgage["state"] == SUCCESS, mortgage["log"][-4000:]
    assert registry.alias_version("credit_data", "champion") == 1
    assert registry.history("credit_data") == credit_history
    assert _digest(reference / "credit_data.parquet") == credit_ref
    assert registry.alias_version("mortgage", "champion") == 1
    assert registry.metadata("mortgage", 1)["spec_name"] == "hmda"
    assert (reference / "mortgage.parquet").is_file()

    # ---- the same two workers serve both flows
    worker = worker_env(
        topics["credit_data"],
        group_id,
        Path(env["DECISIONFLOW_REGISTRY_URL"]),
        DECISIONFLOW_FLOWS=",".join(flows.values()),
        DECISIONFLOW_POLICIES_DIR=env["DECISIONFLOW_POLICIES_DIR"],
        DECISIONFLOW_DEDUPE_WINDOW_S="0",
    )
    all_topics = [t for name in EVENTS for t in (topics[name].decisions, topics[name].dlq)]
    reader = CommittedReader(bootstrap, *all_topics)
    workers = [start_test_worker(f"{n}-{group_id[-6:]}", worker, tmp_path) for n in ("a", "b")]
    truth: dict[str, dict[str, str]] = {}
    try:
        for w in workers:
            w.wait_for_log("decision loop started as", 180)
        for name, n in EVENTS.items():
            spec = load_spec(load_flow(flows[name]).spec)
            frame = load_frame(spec).sample(n, random_state=1)
            key = spec.entity_key.column
            truth[name] = dict(zip(frame[key], frame[spec.label.column].astype(str), strict=True))
            with EventProducer(bootstrap, topic=topics[name].events) as producer:
                for entity_id, features in events_from_frame(frame, spec.feature_names, key):
                    producer.send(entity_id, features, event_id=f"{name}-{entity_id}")

        def decided() -> bool:
            reader.poll()
            return all(reader.count(topics[name].decisions) >= n for name, n in EVENTS.items())

        wait_for(decided, 180, "both flows decided", poll=0)  # reader.poll() waits itself
        logs = "\n".join(w.log_text()[-2000:] for w in workers)
        for w in workers:  # both workers run both flows' loops
            assert all(f"for flow {name}" in w.log_text() for name in EVENTS), logs
    finally:
        stop_workers(workers)
    reader.poll(2000)
    for name, n in EVENTS.items():
        records = reader.records[topics[name].decisions]
        ids = Counter(d["event_id"] for d in records)
        assert len(ids) == n and max(ids.values()) == 1, name
        assert all(i.startswith(f"{name}-") for i in ids), f"{name} decided another flow's event"
        assert {d["model_name"] for d in records} == {name}
        assert not reader.records[topics[name].dlq]
    reader.close()

    # ---- outcomes per flow; one sink lands both flows
    published = {}
    for name in EVENTS:
        settings = SinkSettings(topics=topics[name])
        labels = labels_for_decisions(settings, truth[name], share=0.8, seed=1)
        published[name] = publish_outcomes(settings, labels)
    sink = SinkSettings(
        flows=list(flows.values()), database_url=SecretStr(pg_url), sink_group_id=f"{group_id}-sink"
    )
    db = store.make_engine(pg_url)
    DecisionSink(sink, db).run(until_idle_s=3)
    for name, n in EVENTS.items():
        rows = store.decisions_with_outcomes(db, model_name=name)
        assert len(rows) == n and int(rows["label"].notna().sum()) == published[name]
    db.dispose()

    # ---- the evaluate DAG measures each flow on its own decisions, reports apart
    for name in EVENTS:
        run = airflow.run(
            "decisionflow_evaluate",
            {"flow": flows[name], "window_days": 1, "min_labelled": 20},
        )
        assert run["state"] == SUCCESS, run["log"][-4000:]
        reports = list(Path(env["DECISIONFLOW_REPORTS_DIR"], name).glob("*/metrics.json"))
        assert len(reports) == 1, reports
        doc = json.loads(reports[0].read_text())
        assert sum(q["labelled"] for q in doc["quality"]) == published[name]
        assert (reports[0].parent / "evaluation.html").is_file()
