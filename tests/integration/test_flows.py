"""One worker process serving two decision flows: each flow's events are decided on its own
topics, under its own consumer group, with its own metrics; nothing crosses over."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import ExitStack

from kafka import KafkaProducer
from prometheus_client import REGISTRY

from decisioning.flow import parse_flow
from tests.integration.streaming import CommittedReader, deciding, loop_settings, make_topics
from tests.integration.workerproc import wait_for
from workers.testing import valid_event


def _decided(flow: str) -> float:
    total = 0.0
    for family in REGISTRY.collect():
        if family.name == "decisionflow_decisions":
            total += sum(
                s.value
                for s in family.samples
                if s.name.endswith("_total") and s.labels["flow"] == flow
            )
    return total


def test_two_flows_in_one_process_keep_their_events_decisions_and_metrics_apart(
    bootstrap: str, make_topic: Callable[..., str], group_id: str
) -> None:
    credit_topics, other_topics = make_topics(make_topic), make_topics(make_topic)
    base = loop_settings(credit_topics, group_id)
    credit = base.for_flow(parse_flow({"name": "t_credit", "spec": "s", "policy": "credit_v1"}))
    other = base.for_flow(
        parse_flow(
            {
                "name": "t_other",
                "spec": "s",
                "policy": "credit_v1",
                "topics": other_topics.model_dump(),
            }
        )
    )
    assert credit.group_id == group_id and other.group_id == f"{group_id}.t_other"
    before = {"t_credit": _decided("t_credit"), "t_other": _decided("t_other")}
    with KafkaProducer(bootstrap_servers=bootstrap) as producer:
        for i in range(300):
            topic = credit_topics.events if i % 3 else other_topics.events  # 200 / 100
            producer.send(topic, json.dumps(valid_event(i)).encode())
    reader = CommittedReader(
        bootstrap, *(t for ts in (credit_topics, other_topics) for t in (ts.decisions, ts.dlq))
    )
    try:
        with ExitStack() as stack:
            stack.enter_context(deciding(credit, "w1"))
            stack.enter_context(deciding(other, "w1"))  # the same worker name: ids stay distinct

            def done() -> bool:
                reader.poll()
                return sum(reader.accounted(credit_topics)[0].values()) >= 200 and (
                    sum(reader.accounted(other_topics)[0].values()) >= 100
                )

            wait_for(done, 90, "both flows decided", poll=0)
        reader.drain()  # the loops are stopped: anything they committed late shows now
        credit_ids, credit_dlq = reader.accounted(credit_topics)
        other_ids, other_dlq = reader.accounted(other_topics)
    finally:
        reader.close()
    assert set(credit_ids) == {f"evt-{i}" for i in range(300) if i % 3}
    assert set(other_ids) == {f"evt-{i}" for i in range(300) if not i % 3}
    assert max(credit_ids.values()) == max(other_ids.values()) == 1
    assert not credit_dlq and not other_dlq
    assert _decided("t_credit") - before["t_credit"] == 200
    assert _decided("t_other") - before["t_other"] == 100
