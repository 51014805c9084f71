"""dag.test() of the evaluate DAG on a store filled by a real streaming run.

Real Kafka (uuid topics) and PostgreSQL (own schema): a registry champion decides dataset rows
through the transactional decision loop (in-process, as a worker runs it), outcomes are
published for the decided events, the sink lands everything, then the DAG measures it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from decisioning.policy import load_policy
from models.data import holdout_split, load_frame
from models.registry import ModelRegistry
from models.spec import load_spec
from models.training import train_family
from tests.e2e.airflow_harness import DagRunner, make_env
from tests.e2e.pipeline import stream_into_store
from tests.integration.streaming import make_topics
from workers.engine import DecisionEngine
from workers.producer import EventProducer, events_from_frame

N_EVENTS = 800


def test_evaluate_measures_a_real_streaming_run(
    tmp_path: Path,
    bootstrap: str,
    make_topic: Callable[..., str],
    group_id: str,
    pg_url: str,
    airflow_runner: Callable[[dict[str, str]], DagRunner],
) -> None:
    env = make_env(tmp_path, pg_url)
    airflow = airflow_runner(env)  # migrates the DB while the store fills
    spec = load_spec("credit_data")
    frame = load_frame(spec)
    train, live = holdout_split(frame, spec, test_size=0.25, seed=3)
    registry = ModelRegistry(env["DECISIONFLOW_REGISTRY_URL"])
    version = registry.register(train_family("logreg", train, spec), name="credit_data")
    registry.promote("credit_data", version, reason="e2e champion")
    champion = registry.load("credit_data", "champion")

    topics = make_topics(make_topic, partitions=2)
    live = live.iloc[:N_EVENTS]
    with EventProducer(bootstrap, topic=topics.events) as producer:
        for entity_id, features in events_from_frame(
            live, spec.feature_names, spec.entity_key.column
        ):
            producer.send(entity_id, features, event_id=f"{entity_id}-e2e")

    fill = stream_into_store(
        bootstrap=bootstrap,
        topics=topics,
        group_id=group_id,
        engine=DecisionEngine(champion, load_policy("credit_v1"), spec),
        live=live,
        spec=spec,
        n_events=N_EVENTS,
        pg_url=pg_url,
    )
    assert fill.labels > 600
    assert fill.counts["decisions"] == fill.counts["events"] == N_EVENTS, fill.stats.summary()
    assert fill.counts["outcomes"] == fill.labels

    t0 = time.perf_counter()
    run = airflow.run(
        "decisionflow_evaluate", {"window_days": 1, "f1_floor": 0.99, "min_labelled": 50}
    )
    took = time.perf_counter() - t0
    assert run["state"] == "success", run["log"][-4000:]
    # F1 of the champion is below the (deliberately high) floor: the alert fires
    assert run["tasks"]["quality_alert"] == "success"

    reports = list(Path(env["DECISIONFLOW_REPORTS_DIR"]).glob("credit_data/*/metrics.json"))
    assert len(reports) == 1
    folder = reports[0].parent
    assert {p.name for p in folder.iterdir()} >= {
        "metrics.json",
        "quality.csv",
        "decision_rates.csv",
        "drift.csv",
        "evaluation.html",
        "operations.html",
        "drift.html",
        "operations-by_arm.parquet",
    }
    assert folder.name in (folder.parent / "index.html").read_text()
    doc = json.loads(reports[0].read_text())
    (row,) = [q for q in doc["quality"] if q["arm"] == "champion"]
    assert row["model_version"] == version and row["labelled"] == fill.labels
    for metric in ("accuracy", "precision", "recall", "f1", "roc_auc"):
        assert 0.0 <= row[metric] <= 1.0
    assert row["roc_auc"] > 0.7  # the champion ranks real labels well
    (rates,) = doc["decision_rates"]
    assert (
        abs(
            rates["approve_rate"]
            + rates["review_rate"]
            + rates["decline_rate"]
            + rates["other_rate"]
            - 1.0
        )
        < 1e-9
    )
    drift = pd.read_csv(folder / "drift.csv")
    assert set(drift["feature"]) == set(spec.feature_names)
    assert drift["psi"].max() < 0.25  # live rows come from the same population
    assert doc["verdict"]["retrain"] is True and "below the floor" in doc["verdict"]["reasons"][0]
    print(f"\nevaluate dag.test: {took:.1f}s")
