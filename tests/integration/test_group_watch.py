"""A static member killed between the two rounds of a cooperative rebalance and restarted
within its session gets its first-round assignment back without a rebalance: the partitions it
was giving up are owned by nobody. The decision loop's group watch notices and forces a
rebalance, so they are decided again."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.integration.streaming import deciding, loop_settings, make_topics
from tests.integration.workerproc import wait_for
from workers.group_watch import GroupView, admin_client, describe_group
from workers.settings import KafkaSettings

MEMBER = Path(__file__).with_name("static_member.py")


class _Member:
    """tests/integration/static_member.py in a process, its assignments read from stdout."""

    def __init__(self, bootstrap: str, group: str, topic: str, die_on_revoke: bool) -> None:
        args = [sys.executable, str(MEMBER), bootstrap, group, topic, f"{group}-a"]
        self.proc = subprocess.Popen(
            [*args, "--die-on-revoke"] if die_on_revoke else args,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.assignments: queue.Queue[set[int]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("assigned"):
                parts = line.split()[1:]
                self.assignments.put({int(p) for p in parts[0].split(",")} if parts else set())

    def next_assignment(self) -> set[int]:
        return self.assignments.get(timeout=60)


@contextmanager
def _member(bootstrap: str, group: str, topic: str, die_on_revoke: bool) -> Iterator[_Member]:
    member = _Member(bootstrap, group, topic, die_on_revoke)
    try:
        yield member
    finally:
        member.proc.kill()
        member.proc.wait(10)


def test_partitions_left_unowned_by_a_restarted_static_member_are_handed_out_again(
    bootstrap: str, make_topic: Callable[..., str], group_id: str
) -> None:
    topics = make_topics(make_topic, partitions=4)
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    settings = loop_settings(topics, group_id, kafka_client="confluent", group_check_s=3)

    admin = admin_client(kafka)

    def view() -> GroupView:
        return describe_group(admin, group_id, topics.events)

    with _member(bootstrap, group_id, topics.events, die_on_revoke=True) as first:
        assert first.next_assignment() == {0, 1, 2, 3}
        with deciding(settings, "b") as (b, _):
            # b's join: in the first round `a` is told to give up two partitions and dies
            assert first.proc.wait(60) == 9
            with _member(bootstrap, group_id, topics.events, die_on_revoke=False) as again:
                kept = again.next_assignment()
                stalled = view()
                assert stalled.settled and stalled.unowned == {0, 1, 2, 3} - kept, stalled
                assert not b.tracker.assigned
                # two checks 3 s apart see the same unowned partitions: a forced rebalance
                wait_for(lambda: b.tracker.assigned != set(), 60, "b is given partitions", 0.2)
                wait_for(lambda: not view().unowned, 30, "every partition owned", 0.5)
                assert b.group_watch is not None and b.group_watch.forced >= 1
