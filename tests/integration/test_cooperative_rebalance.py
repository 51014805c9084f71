"""Cooperative rebalancing (confluent client, cooperative-sticky): a worker joining or leaving
moves only the partitions that change owner; the worker already there never gives up the
others, and every event is still decided exactly once."""

from __future__ import annotations

from collections.abc import Callable

from tests.integration.streaming import (
    SteadyProducer,
    assert_decided_once,
    deciding,
    loop_settings,
    make_topics,
)
from tests.integration.workerproc import wait_for
from workers.kafka_client import TP


def test_joining_and_leaving_move_only_the_partitions_that_change_owner(
    bootstrap: str, make_topic: Callable[..., str], group_id: str
) -> None:
    topics = make_topics(make_topic, partitions=4)
    settings = loop_settings(topics, group_id, kafka_client="confluent")
    producer = SteadyProducer(bootstrap, topics.events)
    revoked: list[TP] = []
    try:
        with deciding(settings, "b") as (b, _):
            wait_for(lambda: len(b.tracker.assigned) == 4, 60, "b owns every partition", 0.2)
            spy = b.tracker.on_revoked

            def on_revoked(partitions: list[TP]) -> None:
                revoked.extend(partitions)
                spy(partitions)

            b.tracker.on_revoked = on_revoked  # type: ignore[method-assign]
            kept_before = b.committed_batches
            with deciding(settings, "a") as (a, _):
                wait_for(lambda: len(a.tracker.assigned) == 2, 60, "a joins with 2 partitions", 0.2)
                wait_for(lambda: len(b.tracker.assigned) == 2, 30, "b keeps 2 partitions", 0.2)
                moved = set(a.tracker.assigned)
                wait_for(lambda: a.committed_batches > 0, 30, "a decides", 0.1)
                assert sorted(revoked) == sorted(moved), (
                    f"b gave up {sorted(revoked)}, only {sorted(moved)} moved"
                )
                assert b.committed_batches > kept_before, "b stopped deciding"
            # a is gone (a static member: its partitions move after the session timeout): b only
            # gains partitions, it gives up nothing more
            wait_for(lambda: len(b.tracker.assigned) == 4, 60, "b takes a's partitions", 0.2)
            assert sorted(revoked) == sorted(moved)
            # b is still deciding: a's partitions come to it one session after a is gone
            assert_decided_once(bootstrap, topics, producer.stop())
    finally:
        producer.stop()
