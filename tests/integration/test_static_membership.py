"""Static group membership: a worker that goes away and comes back under its name within the
session timeout takes its own partitions back without a rebalance; the other worker never
stops, and every event is still decided exactly once."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.integration.streaming import (
    SteadyProducer,
    assert_decided_once,
    deciding,
    loop_settings,
    make_topics,
)
from tests.integration.workerproc import wait_for
from workers.kafka_client import TP, ClientName


def test_a_restarted_worker_takes_its_partitions_back_without_a_rebalance(
    bootstrap: str, make_topic: Callable[..., str], group_id: str, kafka_client: ClientName
) -> None:
    topics = make_topics(make_topic, partitions=4)
    settings = loop_settings(topics, group_id, kafka_client=kafka_client)
    producer = SteadyProducer(bootstrap, topics.events)
    revoked: list[TP] = []
    try:
        with deciding(settings, "b") as (b, _):
            wait_for(lambda: len(b.tracker.assigned) == 4, 60, "b owns every partition", 0.2)
            with deciding(settings, "a") as (a, _):
                wait_for(lambda: len(a.tracker.assigned) == 2, 60, "a joins with 2 partitions", 0.2)
                wait_for(lambda: len(b.tracker.assigned) == 2, 30, "b keeps 2 partitions", 0.2)
                mine = set(a.tracker.assigned)
                time.sleep(2)
            # a is gone without leaving the group (a static member never sends LeaveGroup)
            spy = b.tracker.on_revoked

            def on_revoked(partitions: list[TP]) -> None:
                revoked.extend(partitions)
                spy(partitions)

            b.tracker.on_revoked = on_revoked  # type: ignore[method-assign]
            time.sleep(1)
            t0 = time.monotonic()
            with deciding(settings, "a") as (a2, _):
                wait_for(lambda: a2.tracker.assigned == mine, 30, "a gets its own partitions", 0.1)
                back = time.monotonic() - t0
                wait_for(lambda: a2.committed_batches > 0, 30, "a decides again", 0.1)
                time.sleep(2)
            assert revoked == [], f"the other worker was rebalanced: {revoked}"
            assert back < 10, f"partitions came back after {back:.1f}s"
            # b is still deciding: a's partitions come to it one session after a is gone
            assert_decided_once(bootstrap, topics, producer.stop())
    finally:
        producer.stop()
