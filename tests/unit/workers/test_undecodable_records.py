"""Records the Kafka client cannot decode: each backend hands one over as an errored record after
a bounded number of tries and moves past it; the engine dead-letters it (reason undecodable,
stage consume) in the batch's own result; the loop commits past it without rebuilding clients;
the sink quarantines it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import kafka.codec
import pytest
from confluent_kafka import KafkaError, Message
from confluent_kafka import TopicPartition as ConfluentTP
from kafka import TopicPartition
from kafka.consumer.fetcher import Fetcher
from kafka.errors import CorruptRecordError, KafkaTimeoutError
from kafka.record import MemoryRecords, MemoryRecordsBuilder
from pydantic import SecretStr

from decisioning.contracts import DeadLetter
from decisioning.policy import load_policy
from storage import store
from workers import kafka_confluent
from workers.decide_loop import DecisionLoop
from workers.engine import DecisionEngine, RawRecord
from workers.kafka_client import ClientError, Consumer, Membership, Offsets
from workers.kafka_confluent import ConfluentConsumer
from workers.kafka_python import DECODE_TRIES, DecodingPoller
from workers.settings import KafkaSettings, SinkSettings, Topics, WorkerSettings
from workers.sink import DecisionSink
from workers.testing import FakeLogConsumer, FakeModel, FakeTxnProducer, valid_event

ERROR = "UnsupportedCodecError: Libraries for snappy compression codec not found"


def _event(i: int) -> bytes:
    return json.dumps(valid_event(i)).encode()


def _engine() -> DecisionEngine:
    model = FakeModel()
    return DecisionEngine(model, load_policy("credit_v1"), model.spec)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- engine


def test_an_undecodable_record_is_dead_lettered_in_the_batch_result() -> None:
    batch = [
        RawRecord("events", 2, 10, b"k", _event(0)),
        RawRecord("events", 2, 11, None, None, 0, error=ERROR),
        RawRecord("events", 2, 12, b"k", b"{not json"),
        RawRecord("events", 2, 13, b"k", _event(3)),
    ]
    out = _engine().process(batch)
    assert [d.event_id for d in out.decisions] == ["evt-0", "evt-3"]
    by_offset = {dl.source_offset: dl for dl in out.dlq}
    assert set(by_offset) == {11, 12}
    dl = by_offset[11]
    assert (dl.reason, dl.stage, dl.source_topic, dl.source_partition) == (
        "undecodable",
        "consume",
        "events",
        2,
    )
    assert dl.error_class == "UndecodableRecordError" and dl.error_message == ERROR
    assert (dl.raw, dl.raw_size, dl.source_key) == ("", 0, None)
    assert by_offset[12].reason == "invalid_json"  # the neighbours keep their own reasons
    topics = Topics()
    written = [(t, v) for t, _k, v in out.records(topics) if t == topics.dlq]
    assert len(written) == 2
    assert DeadLetter.model_validate_json(written[0][1]).reason == "undecodable"


def test_a_batch_of_only_undecodable_records_is_all_dead_letters() -> None:
    batch = [RawRecord("events", 0, i, None, None, error=ERROR) for i in range(3)]
    out = _engine().process(batch)
    assert out.decisions == []
    assert [(d.reason, d.source_offset) for d in out.dlq] == [("undecodable", i) for i in range(3)]


# ---------------------------------------------------------------------- decide loop


def test_the_loop_commits_past_undecodable_records_without_rebuilding_clients() -> None:
    consumer = FakeLogConsumer(
        {0: [_event(i) for i in range(40)], 1: [_event(100 + i) for i in range(40)]}
    )
    consumer.undecodable = {(0, 5), (0, 6), (1, 39)}
    producer = FakeTxnProducer()
    settings = WorkerSettings(_env_file=None, max_batch_size=25, max_wait_ms=0)  # type: ignore[call-arg]
    loop = DecisionLoop(settings, _engine(), worker_name="unit")
    consumer.listener = loop.tracker
    loop.tracker.on_assigned(list(consumer.assignment()))
    loop.consumer, loop.producer = consumer, producer
    built: list[str] = []

    def rebuild() -> Any:
        built.append("client")
        raise AssertionError("clients rebuilt for a data error")

    loop._make_consumer = rebuild  # type: ignore[method-assign]
    loop._make_producer = rebuild  # type: ignore[method-assign]
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while producer.offsets != {("events", 0): 40, ("events", 1): 40}:
        assert time.monotonic() < deadline, f"offsets stuck at {producer.offsets}"
        time.sleep(0.01)
    loop.stop()
    thread.join(10)
    assert not thread.is_alive() and built == []
    assert producer.aborts == 0
    dlq = [DeadLetter.model_validate_json(v) for t, v in producer.committed if t == "events.dlq"]
    assert sorted((d.source_partition, d.source_offset, d.reason, d.stage) for d in dlq) == [
        (0, 5, "undecodable", "consume"),
        (0, 6, "undecodable", "consume"),
        (1, 39, "undecodable", "consume"),
    ]
    decided = [json.loads(v)["event_id"] for t, v in producer.committed if t == "decisions"]
    assert len(decided) == len(set(decided)) == 77


# ---------------------------------------------------------------------- kafka-python


def _batches(*parts: tuple[int, range]) -> list[tuple[int, bytes]]:
    """Record batches as the broker stores them, (last offset, bytes) each, from
    (codec, offsets) each."""
    out = []
    for codec, offsets in parts:
        builder = MemoryRecordsBuilder(2, codec, 1 << 20, offset=offsets[0])
        for o in offsets:
            builder.append(1000 + o, None, f"v{o}".encode() + b"x" * 200)
        builder.close()
        out.append((offsets[-1], bytes(builder.buffer())))
    return out


# built while the codec is there: plain 0-1, one snappy batch 2-6, plain 7-8; snappy 0-2
MIXED_LOG = _batches((0, range(0, 2)), (2, range(2, 7)), (0, range(7, 9)))
SNAPPY_LOG = _batches((2, range(0, 3)))


class MiniKafkaPython:
    """kafka-python's consumer in miniature: a poll goes on with the records in hand or fetches
    the next partition in turn from its position, and unpacks with kafka-python's own fetcher
    code. Polling again after a failure without a seek or a drain fails the test: the real
    client loops forever there."""

    def __init__(self, logs: dict[int, list[tuple[int, bytes]]], assigned: bool = True) -> None:
        self.logs = logs
        self.assigned = assigned
        self.positions = dict.fromkeys(logs, 0)
        self.polls = 0
        self.seeks: list[tuple[int, int]] = []
        self._fetcher = SimpleNamespace(_next_partition_records=None)
        self._failed = False
        self._turn = 0

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition("events", p) for p in self.logs} if self.assigned else set()

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp.partition, offset))
        self.positions[tp.partition] = offset

    def poll(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        self.polls += 1
        part = self._fetcher._next_partition_records
        if part and part.next_fetch_offset == self.positions[part.topic_partition.partition]:
            assert not self._failed, "polled a failed batch again: kafka-python spins here"
        else:
            part = self._fetch()
            if part is None:
                return {}
        self._failed = True
        records = part.take(max_records)
        self._failed = False
        self.positions[part.topic_partition.partition] = part.next_fetch_offset
        return {part.topic_partition: records} if records else {}

    def _fetch(self) -> Any:
        """The next partition in turn with records at its position: the broker sends from
        the batch holding the position on."""
        for _ in self.logs:
            p = sorted(self.logs)[self._turn % len(self.logs)]
            self._turn += 1
            data = b"".join(b for last, b in self.logs[p] if last >= self.positions[p])
            if data:
                tp = TopicPartition("events", p)
                part = Fetcher.PartitionRecords(self.positions[p], tp, MemoryRecords(data))
                self._fetcher._next_partition_records = part
                return part
        return None


@pytest.fixture
def no_snappy(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a host without the snappy library."""
    monkeypatch.setattr(kafka.codec, "has_snappy", lambda: False)


def _drain(poller: DecodingPoller, polls: int) -> list[RawRecord]:
    out: list[RawRecord] = []
    for _ in range(polls):
        out += poller.poll(0, 500)
    return out


@pytest.mark.usefixtures("no_snappy")
def test_kafka_python_retries_then_hands_over_each_record_and_moves_on() -> None:
    mini = MiniKafkaPython({0: MIXED_LOG})
    poller = DecodingPoller(mini)
    got: list[RawRecord] = []
    while not got or got[-1].offset < 8:
        assert mini.polls < 20, f"stuck after {[r.offset for r in got]}"
        got += poller.poll(0, 500)
    assert [r.offset for r in got] == list(range(9))  # each once, in order
    assert [r.offset for r in got if r.error] == [2, 3, 4, 5, 6]
    assert all(r.error == ERROR for r in got[2:7])
    assert all(r.value is None and r.key is None for r in got[2:7])
    assert got[7].value is not None and got[7].value.startswith(b"v7")
    # the first record of the batch got DECODE_TRIES fetches, the rest of its batch one each
    assert mini.polls == 1 + DECODE_TRIES + 4 + 1
    assert mini.seeks == [(0, 3), (0, 4), (0, 5), (0, 6), (0, 7)]


@pytest.mark.usefixtures("no_snappy")
def test_kafka_python_gives_up_on_a_record_only_after_its_tries() -> None:
    mini = MiniKafkaPython({0: SNAPPY_LOG})
    poller = DecodingPoller(mini)
    assert _drain(poller, DECODE_TRIES - 1) == [] and mini.seeks == []
    (rec,) = poller.poll(0, 500)
    assert (rec.topic, rec.partition, rec.offset, rec.error is not None) == ("events", 0, 0, True)
    assert mini.seeks == [(0, 1)]


@pytest.mark.usefixtures("no_snappy")
def test_kafka_python_counts_tries_per_partition_when_failures_alternate() -> None:
    mini = MiniKafkaPython({0: SNAPPY_LOG, 1: SNAPPY_LOG})  # fetches take turns
    got = _drain(DecodingPoller(mini), 2 * DECODE_TRIES + 4 + 2)
    assert sorted((r.partition, r.offset) for r in got) == [
        (p, o) for p in (0, 1) for o in range(3)
    ]
    assert all(r.error is not None for r in got)


@pytest.mark.usefixtures("no_snappy")
def test_kafka_python_leaves_a_record_of_a_revoked_partition_to_its_new_owner() -> None:
    mini = MiniKafkaPython({0: SNAPPY_LOG}, assigned=False)
    assert _drain(DecodingPoller(mini, tries=1), 3) == [] and mini.seeks == []


def test_kafka_python_errors_outside_decoding_stay_client_errors() -> None:
    for exc in (KafkaTimeoutError("broker gone"), CorruptRecordError("reported by the broker")):
        client = SimpleNamespace(poll=_raises(exc), _fetcher=SimpleNamespace())
        with pytest.raises(ClientError, match=type(exc).__name__):
            DecodingPoller(client).poll(0, 10)  # type: ignore[arg-type]


def _raises(exc: BaseException) -> Callable[..., Any]:
    def poll(**_: Any) -> Any:
        raise exc

    return poll


# ---------------------------------------------------------------------- confluent


class FakeLibrdkafka:
    """The parts of confluent_kafka.Consumer that ConfluentConsumer uses, scripted: each
    ``consume`` returns the next list of messages; ``position`` is -1001 after a seek, as in
    librdkafka, until a message is read."""

    def __init__(self, conf: dict[str, Any]) -> None:
        self.script: list[list[Message]] = []
        self.seeks: list[tuple[int, int]] = []
        self.pos: dict[int, int] = {}
        self.committed_at = -1001
        self.callbacks: dict[str, Callable[..., None]] = {}

    def list_topics(self, topic: str, timeout: float) -> Any:
        meta = SimpleNamespace(error=None, partitions={0: None, 1: None})
        return SimpleNamespace(topics={topic: meta})

    def subscribe(self, topics: list[str], **callbacks: Callable[..., None]) -> None:
        self.callbacks = callbacks

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        msgs = self.script.pop(0) if self.script else []
        for m in msgs:
            if m.error() is None:
                self.pos[m.partition()] = m.offset() + 1  # type: ignore[index,operator]
        return msgs

    def position(self, parts: list[ConfluentTP]) -> list[ConfluentTP]:
        return [ConfluentTP(p.topic, p.partition, self.pos.get(p.partition, -1001)) for p in parts]

    def seek(self, tp: ConfluentTP) -> None:
        self.seeks.append((tp.partition, tp.offset))
        self.pos.pop(tp.partition, None)

    def committed(self, parts: list[ConfluentTP], timeout: float) -> list[ConfluentTP]:
        return [ConfluentTP(p.topic, p.partition, self.committed_at) for p in parts]


def _msg(partition: int, offset: int, code: int | None = None) -> Message:
    if code is None:
        return Message(topic="events", partition=partition, offset=offset, value=_event(offset))
    return Message(topic="events", partition=partition, offset=offset, error=KafkaError(code))


@pytest.fixture
def confluent(monkeypatch: pytest.MonkeyPatch) -> tuple[ConfluentConsumer, FakeLibrdkafka]:
    monkeypatch.setattr(kafka_confluent, "Consumer", FakeLibrdkafka)
    consumer = ConfluentConsumer(KafkaSettings(), "g", ["events"], None, 500, 300_000, Membership())
    return consumer, cast(FakeLibrdkafka, consumer._c)


def test_confluent_skips_past_a_batch_it_cannot_decompress_one_record_at_a_time(
    confluent: tuple[ConfluentConsumer, FakeLibrdkafka],
) -> None:
    consumer, lib = confluent
    bad = KafkaError._BAD_COMPRESSION
    # records 0-1 read, then the batch 2..4 fails; librdkafka reports it at its base offset
    # also when it fetched from further in (after each seek)
    lib.script = [[_msg(0, 0), _msg(0, 1), _msg(0, 2, bad)], [_msg(0, 2, bad)], [_msg(0, 2, bad)]]
    lib.script += [[_msg(0, 2, bad), _msg(0, 2, bad)], [_msg(0, 5)]]
    got = [consumer.poll(100, 500) for _ in range(5)]
    assert [[(r.offset, r.error is not None) for r in recs] for recs in got] == [
        [(0, False), (1, False), (2, True)],
        [(3, True)],
        [(4, True)],
        [(5, True)],  # a repeated report in the same poll is dropped
        [(5, False)],
    ]
    assert lib.seeks == [(0, 3), (0, 4), (0, 5), (0, 6)]
    assert got[0][2].error is not None and "_BAD_COMPRESSION" in got[0][2].error


def test_confluent_keeps_the_reported_offset_when_librdkafka_moved_on_itself(
    confluent: tuple[ConfluentConsumer, FakeLibrdkafka],
) -> None:
    consumer, lib = confluent
    lib.script = [[_msg(1, 7, KafkaError._NOT_IMPLEMENTED), _msg(1, 8), _msg(0, 3)]]
    got = consumer.poll(100, 500)
    assert [(r.partition, r.offset, r.error is not None) for r in got] == [
        (1, 7, True),
        (1, 8, False),
        (0, 3, False),
    ]
    assert lib.seeks == []


def test_confluent_starts_from_the_committed_offset_after_an_assignment(
    confluent: tuple[ConfluentConsumer, FakeLibrdkafka],
) -> None:
    consumer, lib = confluent
    consumer.seek(("events", 0), 4)  # before the rebalance: forgotten on assignment
    lib.callbacks["on_assign"](lib, [ConfluentTP("events", 0)])
    lib.committed_at = 12  # records 10, 11 of the failed batch were handed over before
    lib.script = [[_msg(0, 10, KafkaError.INVALID_RECORD)]]
    (rec,) = consumer.poll(100, 500)
    assert (rec.offset, rec.error is not None) == (12, True)
    assert lib.seeks[-1] == (0, 13)


def test_confluent_other_errors_are_skipped_or_raised_never_records(
    confluent: tuple[ConfluentConsumer, FakeLibrdkafka],
) -> None:
    consumer, lib = confluent
    transient = Message(error=KafkaError(KafkaError._TRANSPORT))
    no_partition = Message(error=KafkaError(KafkaError._BAD_MSG))
    lib.script = [[transient, no_partition, _msg(0, 1)]]
    assert [r.offset for r in consumer.poll(100, 500)] == [1]
    lib.script = [[Message(error=KafkaError(KafkaError._FATAL, fatal=True))]]
    with pytest.raises(ClientError):
        consumer.poll(100, 500)


# ---------------------------------------------------------------------- sink


class ListConsumer:
    """One poll hands over the records, later polls nothing; commits are kept."""

    def __init__(self, records: list[RawRecord]) -> None:
        self.records = records
        self.commits: list[dict[tuple[str, int], int]] = []

    def assignment(self) -> set[tuple[str, int]]:
        return {("events", 0)}

    def poll(self, timeout_ms: int, max_records: int) -> list[RawRecord]:
        out, self.records = self.records, []
        return out

    def commit(self, offsets: Offsets) -> None:
        self.commits.append(dict(offsets))

    def seek(self, tp: tuple[str, int], offset: int) -> None:
        return None

    def close(self) -> None:
        return None


def test_the_sink_quarantines_an_undecodable_record_and_moves_on(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    settings = SinkSettings(_env_file=None, database_url=SecretStr(url))  # type: ignore[call-arg]
    consumer = ListConsumer(
        [
            RawRecord("events", 0, 0, b"k", _event(0)),
            RawRecord("events", 0, 1, None, None, 0, error=ERROR),
        ]
    )
    sink = DecisionSink(settings)
    sink._consumer = lambda: cast(Consumer, consumer)  # type: ignore[method-assign]
    stats = sink.run(until_idle_s=0.0)
    assert stats.written["events"] == 1 and stats.quarantined["events"] == 1
    assert consumer.commits == [{("events", 0): 2}]
    (held,) = store.read_quarantine(store.make_engine(url))
    assert (held.source_offset, held.kind, held.stage) == (1, "events", "parse")
    assert held.error_class == "UndecodableRecordError" and ERROR in held.error
