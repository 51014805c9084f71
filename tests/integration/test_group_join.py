"""Joining a group while ``poll`` uses short time-outs: every member finishes each join.

kafka-python 3.0.12 loses joins when ``poll`` times out while the JoinGroup or SyncGroup is
in flight. A rejoin its group leader starts on a metadata change (the first metadata after
subscribing always is one) is never completed: the member keeps its old partitions, sends no
more heartbeats and is expelled one session later, and a second member's join waits for it
until then. A join that completes between two polls is thrown away and sent again: one more
rebalance round, a heartbeat interval (1 s) for every member, and it can repeat. A join that
is not lost takes about one heartbeat interval.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tests.integration.workerproc import wait_for
from workers.kafka_client import TP, ClientName, Consumer, Membership, make_consumer
from workers.settings import KafkaSettings


class _Tracker:
    def __init__(self) -> None:
        self.assigned: set[TP] = set()
        self.assignments = 0  # rebalance rounds this member took part in

    def on_revoked(self, partitions: list[TP]) -> None:
        self.assigned.difference_update(partitions)

    def on_assigned(self, partitions: list[TP]) -> None:
        self.assigned.update(partitions)
        self.assignments += 1


@contextmanager
def _member(
    bootstrap: str, group_id: str, topic: str, client: ClientName, name: str
) -> Iterator[_Tracker]:
    tracker = _Tracker()
    consumer: Consumer = make_consumer(
        client,
        KafkaSettings(bootstrap_servers=bootstrap),
        group_id=group_id,
        topics=[topic],
        listener=tracker,
        membership=Membership(instance_id=f"{group_id}-{name}", session_timeout_ms=6000),
    )
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            consumer.poll(1, 100)  # a 1 ms time-out: every join outlasts some poll

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield tracker
    finally:
        stop.set()
        thread.join(10)
        consumer.close()


def test_a_second_member_joins_while_the_first_polls_with_short_timeouts(
    bootstrap: str, make_topic: Callable[..., str], group_id: str, kafka_client: ClientName
) -> None:
    topic = make_topic("join", partitions=4)
    for attempt in range(3):
        group = f"{group_id}-{attempt}"
        with _member(bootstrap, group, topic, kafka_client, "b") as b:
            wait_for(lambda: len(b.assigned) == 4, 30, "b owns every partition", 0.05)
            time.sleep(0.5)  # the leader's rejoin on its first metadata is under way or done
            with _member(bootstrap, group, topic, kafka_client, "a") as a:
                t0 = time.monotonic()
                wait_for(
                    lambda: len(a.assigned) == 2 and len(b.assigned) == 2,
                    30,
                    "the partitions split 2/2",
                    0.05,
                )
                took = time.monotonic() - t0
                time.sleep(2)  # two heartbeats: a join sent again would start another round
                rounds = a.assignments
        # a lost join costs a session (6 s); each join sent again, one more heartbeat round
        assert took < 2.5, f"attempt {attempt}: the second member waited {took:.1f}s to join"
        assert rounds == 1, f"attempt {attempt}: one member joining took {rounds} rebalances"
