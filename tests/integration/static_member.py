"""A static cooperative group member in a process of its own, for group-healing tests.

``python static_member.py BOOTSTRAP GROUP TOPIC INSTANCE_ID [--die-on-revoke]`` subscribes as
``INSTANCE_ID`` (cooperative-sticky, 6 s session) and prints ``assigned P,Q,..`` on every
assignment. With ``--die-on-revoke`` it exits at once (``os._exit``, as a SIGKILL: no leave, no
rejoin) when a rebalance asks it to give partitions up, between the rebalance's two rounds.
It runs until killed.
"""

from __future__ import annotations

import os
import sys

from confluent_kafka import Consumer, TopicPartition


def main(bootstrap: str, group: str, topic: str, instance: str, die: bool) -> None:
    def on_assign(_c: Consumer, parts: list[TopicPartition]) -> None:
        print("assigned", ",".join(str(p.partition) for p in parts), flush=True)

    def on_revoke(_c: Consumer, parts: list[TopicPartition]) -> None:
        if die and parts:
            os._exit(9)

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "group.instance.id": instance,
            "partition.assignment.strategy": "cooperative-sticky",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
        }
    )
    consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    while True:
        consumer.poll(0.2)


if __name__ == "__main__":
    main(*sys.argv[1:5], die="--die-on-revoke" in sys.argv[5:])
