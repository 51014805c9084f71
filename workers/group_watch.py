"""Heals a consumer group that a cooperative rebalance left with partitions nobody owns.

A cooperative rebalance has two rounds: in the first a member learns which partitions it gives
up, in the second (after it has let them go) they go to their new owner. A static member killed
between the rounds and restarted under its name within the session gets its first-round
assignment back without a rebalance (Kafka's static membership), so no second round follows
and the partitions it was giving up stay unowned until the group's next rebalance: their
events wait, possibly for days.

:class:`GroupWatch` checks the group every ``interval_s`` on a thread of its own (admin
requests only, nothing on the decision path). When the group is stable with the same
partitions unowned on two checks in a row, it forces a rebalance: a throwaway member without
an instance id joins the group and leaves at once (both start a rebalance; it decides and
commits nothing). Nothing is decided twice: the new owner reads from the committed offsets, and
a commit under the old generation is fenced.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from workers import metrics
from workers.settings import KafkaSettings

__all__ = [
    "GroupView",
    "GroupWatch",
    "StallDetector",
    "admin_client",
    "describe_group",
    "force_rebalance",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GroupView:
    """What one check saw: the group settled (stable, with members) and the partitions of the
    topic that no member owns."""

    settled: bool
    unowned: frozenset[int]


class StallDetector:
    """Says when to force a rebalance: the group settled with the same partitions unowned on
    ``confirm`` checks in a row (a normal cooperative rebalance leaves some unowned between
    its rounds, for far less than a check interval)."""

    def __init__(self, confirm: int = 2) -> None:
        self.confirm = confirm
        self._last: frozenset[int] = frozenset()
        self._seen = 0

    def observe(self, view: GroupView | None) -> bool:
        """Record one check (None: it failed); True when a rebalance is due (then start over)."""
        if view is None or not view.settled or not view.unowned:
            self._last, self._seen = frozenset(), 0
            return False
        self._seen = self._seen + 1 if view.unowned == self._last else 1
        self._last = view.unowned
        if self._seen < self.confirm:
            return False
        self._last, self._seen = frozenset(), 0
        return True


def admin_client(kafka: KafkaSettings) -> Any:
    """A confluent AdminClient for :func:`describe_group`."""
    from confluent_kafka.admin import AdminClient

    return AdminClient(kafka.confluent_options())


def describe_group(admin: Any, group_id: str, topic: str, timeout_s: float = 10.0) -> GroupView:
    """The group's view of ``topic`` (``admin``: :func:`admin_client`; raises KafkaException)."""
    from confluent_kafka import ConsumerGroupState

    meta = admin.list_topics(topic, timeout=timeout_s).topics[topic]
    if meta.error is not None:
        raise RuntimeError(f"topic {topic!r}: {meta.error}")
    group = admin.describe_consumer_groups([group_id], request_timeout=timeout_s)[group_id]
    described = group.result()
    owned = {
        tp.partition
        for member in described.members
        if member.assignment is not None
        for tp in member.assignment.topic_partitions
        if tp.topic == topic
    }
    settled = described.state == ConsumerGroupState.STABLE and bool(described.members)
    return GroupView(settled=settled, unowned=frozenset(set(meta.partitions) - owned))


def force_rebalance(
    kafka: KafkaSettings, group_id: str, topic: str, timeout_s: float = 30.0
) -> list[int]:
    """Join ``group_id`` as a throwaway dynamic member and leave at once: two rebalances that
    hand every partition to a live member. Returns what the throwaway member was given."""
    from confluent_kafka import Consumer

    from workers.kafka_confluent import COOPERATIVE_ASSIGNOR

    given: list[list[int]] = []
    consumer = Consumer(
        {
            **kafka.confluent_options(),
            "group.id": group_id,
            "partition.assignment.strategy": COOPERATIVE_ASSIGNOR,  # the group's protocol
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:
        consumer.subscribe(
            [topic], on_assign=lambda _c, parts: given.append([p.partition for p in parts])
        )
        deadline = time.monotonic() + timeout_s
        while not given and time.monotonic() < deadline:
            consumer.poll(0.1)
    finally:
        consumer.close()  # a dynamic member leaves the group: the second rebalance
    return given[0] if given else []


class GroupWatch:
    """Checks a cooperative group every ``interval_s`` and forces a rebalance when partitions
    stay unowned (see the module docstring). ``describe`` and ``rebalance`` default to the
    confluent implementations above."""

    def __init__(
        self,
        kafka: KafkaSettings,
        group_id: str,
        topic: str,
        interval_s: float,
        *,
        flow: str = "default",
        describe: Callable[[], GroupView] | None = None,
        rebalance: Callable[[], Any] | None = None,
    ) -> None:
        self.group_id = group_id
        self.topic = topic
        self.interval_s = interval_s
        self.flow = flow
        self.forced = 0
        self._kafka = kafka
        self._admin: Any = None  # made on the watch's thread, at its first check
        self._describe = describe or self._describe_group
        self._rebalance = rebalance or (lambda: force_rebalance(kafka, group_id, topic))
        self._detector = StallDetector()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"group-watch-{flow}", daemon=True)

    def start(self) -> GroupWatch:
        """Start checking on a daemon thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop checking (waits a few seconds for a check under way; the thread is a daemon)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)

    def check(self) -> bool:
        """One check; True when it forced a rebalance."""
        try:
            view: GroupView | None = self._describe()
        except Exception as exc:  # a broker away: the decision loop deals with it
            log.debug("group check of %s failed: %s", self.group_id, exc)
            view = None
        metrics.GROUP_UNOWNED.labels(self.flow).set(len(view.unowned) if view else 0)
        if not self._detector.observe(view):
            return False
        assert view is not None
        log.warning(
            "group %s: partitions %s of %s owned by no member for %.0fs: forcing a rebalance",
            self.group_id,
            sorted(view.unowned),
            self.topic,
            self.interval_s,
        )
        try:
            self._rebalance()
        except Exception as exc:
            log.warning("could not force a rebalance of %s: %s", self.group_id, exc)
            return False
        self.forced += 1
        metrics.GROUP_REBALANCES_FORCED.labels(self.flow).inc()
        return True

    def _describe_group(self) -> GroupView:
        if self._admin is None:
            self._admin = admin_client(self._kafka)
        return describe_group(self._admin, self.group_id, self.topic)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.check()
