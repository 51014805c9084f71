"""A real streaming run into the store, shared by the e2e tests that need live data.

The engine decides through the transactional decision loop (in-process, as a worker runs it)
on the test's own topics; outcomes are published for most decided events; the sink lands
everything in the test's PostgreSQL schema.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pandas as pd

from models.spec import FeatureSpec
from storage import store
from tests.integration.streaming import CommittedReader
from workers.decide_loop import DecisionLoop
from workers.engine import DecisionEngine
from workers.settings import SinkSettings, Topics, WorkerSettings
from workers.sink import DecisionSink, SinkStats, labels_for_decisions, publish_outcomes

__all__ = ["StoreFill", "stream_into_store"]


@dataclass
class StoreFill:
    """What one streaming run landed: store row counts, outcomes published, sink stats."""

    counts: dict[str, int]
    labels: int
    stats: SinkStats


def stream_into_store(
    *,
    bootstrap: str,
    topics: Topics,
    group_id: str,
    engine: DecisionEngine,
    live: pd.DataFrame,
    spec: FeatureSpec,
    n_events: int,
    pg_url: str,
) -> StoreFill:
    """Decide the events already on ``topics.events``, publish outcomes, run the sink."""
    settings = WorkerSettings(topics=topics, group_id=group_id, max_batch_size=200)
    loop = DecisionLoop(settings, engine, worker_name=f"e2e-{group_id}")
    thread = threading.Thread(target=loop.run, daemon=True)
    reader = CommittedReader(bootstrap, topics.decisions)  # reads on as decisions commit
    thread.start()
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            reader.poll()
            if reader.count(topics.decisions) >= n_events:
                break
    finally:
        loop.stop()
        thread.join(30)
        reader.close()

    sink_settings = SinkSettings(topics=topics, sink_group_id=group_id + "-sink")
    truth = dict(
        zip(live[spec.entity_key.column], live[spec.label.column].astype(str), strict=True)
    )
    labels = labels_for_decisions(sink_settings, truth, share=0.9, seed=1)
    assert publish_outcomes(sink_settings, labels) == len(labels)
    db = store.make_engine(pg_url)
    stats = DecisionSink(sink_settings, db).run(until_idle_s=3)
    counts = store.row_counts(db)
    db.dispose()
    return StoreFill(counts, len(labels), stats)
