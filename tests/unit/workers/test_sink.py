"""The sink lands every kind of record in the store and commits only what it landed.

A record that does not parse is skipped when it is an event (it already sits in the DLQ) and
quarantined otherwise; a record the database refuses for its content is quarantined, the rest
of its batch lands and the offsets move on; a database outage rewinds the batch and retries it
with back-off; SIGTERM stops the sink promptly even while it backs off or hangs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from click.testing import CliRunner
from prometheus_client import REGISTRY
from pydantic import SecretStr
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import DataError, OperationalError

from decisioning.contracts import Outcome
from storage import store
from workers.cli import cli
from workers.kafka_client import TP, Consumer, Offsets, RawRecord
from workers.settings import SinkSettings
from workers.sink import DecisionSink, is_data_error, retry_quarantined, stop_on_signals
from workers.testing import sample_dead_letter, sample_decision, valid_event

ROOT = Path(__file__).resolve().parents[3]


class TopicsConsumer:
    """Records of several topics, one poll per batch; ``seek`` re-delivers from there."""

    def __init__(self, logs: dict[str, list[bytes]]) -> None:
        self.logs = logs
        self.position: dict[str, int] = defaultdict(int)
        self.commits: list[dict[TP, int]] = []
        self.seeks: list[tuple[TP, int]] = []

    def assignment(self) -> set[TP]:
        return {(t, 0) for t in self.logs}

    def poll(self, timeout_ms: int, max_records: int) -> list[RawRecord]:
        out = []
        for topic, values in self.logs.items():
            start = self.position[topic]
            out += [RawRecord(topic, 0, start + i, None, v) for i, v in enumerate(values[start:])]
            self.position[topic] = len(values)
        return out

    def commit(self, offsets: Offsets) -> None:
        self.commits.append(dict(offsets))

    def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))
        self.position[tp[0]] = offset

    def close(self) -> None:
        return None


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


def _sink(tmp_path: Path, consumer: TopicsConsumer, engine: Engine | None = None) -> DecisionSink:
    url = SecretStr(_url(tmp_path))
    settings = SinkSettings(_env_file=None, database_url=url)  # type: ignore[call-arg]
    sink = DecisionSink(settings, engine)
    sink._consumer = lambda: cast(Consumer, consumer)  # type: ignore[method-assign]
    return sink


def _logs() -> dict[str, list[bytes]]:
    events = [json.dumps(valid_event(i)).encode() for i in range(3)]
    outcome = Outcome(
        event_id="evt-1",
        entity_id="app-000001",
        label="bad",
        observed_at=datetime(2026, 12, 1, tzinfo=UTC),
    )
    return {
        "events": [*events, b'{"not": json'],  # the last one the worker dead-lettered
        "outcomes": [outcome.model_dump_json().encode()],
    }


def _decision(i: int) -> bytes:
    return sample_decision(i, datetime(2026, 12, 1, tzinfo=UTC)).model_dump_json().encode()


def _dead_letter(source_offset: int) -> bytes:
    at = datetime(2026, 12, 1, tzinfo=UTC)
    return sample_dead_letter(source_offset, at=at).model_dump_json().encode()


def _count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def _refusing_store(tmp_path: Path) -> Engine:
    """A SQLite store whose decisions table refuses evt-1 (as a CHECK or a type would)."""
    engine = store.make_engine(_url(tmp_path))
    store.create_schema(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TRIGGER refuse_evt1 BEFORE INSERT ON decisions WHEN NEW.event_id = 'evt-1' "
            "BEGIN SELECT RAISE(ABORT, 'decision evt-1 refused'); END"
        )
    return engine


def _mixed_logs() -> dict[str, list[bytes]]:
    """Good records of every kind with three that cannot land: one the trigger refuses, a
    dead letter whose source_offset no 64-bit column holds, an outcome that is not JSON."""
    outcome = Outcome(
        event_id="evt-0",
        entity_id="app-000000",
        label="bad",
        observed_at=datetime(2026, 12, 1, tzinfo=UTC),
    )
    return {
        "events": [json.dumps(valid_event(i)).encode() for i in range(3)],
        "decisions": [_decision(0), _decision(1), _decision(2)],
        "events.dlq": [_dead_letter(7), _dead_letter(2**70)],
        "outcomes": [outcome.model_dump_json().encode(), b'{"not": json'],
    }


def _quarantined(name: str) -> float:
    total = 0.0
    for metric in REGISTRY.collect():
        if metric.name == name:
            total += sum(s.value for s in metric.samples if s.name.endswith("_total"))
    return total


# ---------------------------------------------------------------------- landing


def test_records_land_and_offsets_follow(tmp_path: Path) -> None:
    consumer = TopicsConsumer(_logs())
    stats = _sink(tmp_path, consumer).run(until_idle_s=0.0)
    assert stats.written["events"] == 3 and stats.written["outcomes"] == 1
    assert stats.bad["events"] == 1  # skipped, not retried forever
    assert consumer.commits == [{("events", 0): 4, ("outcomes", 0): 1}]
    engine = store.make_engine(_url(tmp_path))
    assert _count(engine, "events") == 3
    assert _count(engine, "quarantine") == 0  # a malformed event is the DLQ's, not ours


def test_records_the_store_refuses_are_quarantined_and_the_rest_lands(tmp_path: Path) -> None:
    engine = _refusing_store(tmp_path)
    logs = _mixed_logs()
    consumer = TopicsConsumer(logs)
    before = _quarantined("decisionflow_sink_quarantined")

    stats = _sink(tmp_path, consumer, engine).run(until_idle_s=0.0)

    # the good rows of the same batch landed; the partitions moved past everything
    assert (_count(engine, "events"), _count(engine, "decisions")) == (3, 2)
    assert (_count(engine, "dead_letters"), _count(engine, "outcomes")) == (1, 1)
    assert consumer.commits == [{(t, 0): len(v) for t, v in logs.items()}]
    assert stats.db_errors == 0 and stats.refused == {"decisions": 1, "dlq": 1}
    # nothing lost: each refused record is kept raw, with where it came from and why
    held = {(q.source_topic, q.source_offset): q for q in store.read_quarantine(engine)}
    assert set(held) == {("decisions", 1), ("events.dlq", 1), ("outcomes", 1)}
    assert held["decisions", 1].raw == logs["decisions"][1]
    assert held["decisions", 1].stage == "store"
    assert held["decisions", 1].error_class == "IntegrityError"
    assert "refused" in held["decisions", 1].error
    assert held["events.dlq", 1].raw == logs["events.dlq"][1]
    assert held["events.dlq", 1].error_class == "OverflowError"
    assert held["outcomes", 1].stage == "parse"
    assert _quarantined("decisionflow_sink_quarantined") - before == 3

    # a replay of the topics (a new group) lands nothing twice, quarantines nothing twice
    again = _sink(tmp_path, TopicsConsumer(logs), engine).run(until_idle_s=0.0)
    assert sum(again.written.values()) == 0 and _count(engine, "quarantine") == 3


def test_the_quarantine_is_written_in_the_batch_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If keeping the bad record fails, none of the batch is committed, then all of it is."""
    logs = {"decisions": [_decision(i) for i in range(3)], "outcomes": [b'{"not": json']}
    consumer = TopicsConsumer(logs)
    sink = _sink(tmp_path, consumer)
    real = store.write_quarantine
    seen_by_others: list[int] = []

    def flaky(conn: Any, items: Any) -> int:
        with sink.engine.connect() as other:  # what another reader sees meanwhile
            seen = other.execute(text("SELECT count(*) FROM decisions")).scalar_one()
            seen_by_others.append(int(seen))
        if len(seen_by_others) == 1:
            raise OperationalError("INSERT", {}, Exception("server closed the connection"))
        return real(conn, items)

    monkeypatch.setattr(store, "write_quarantine", flaky)
    monkeypatch.setattr(sink._stop, "wait", lambda _s: False)  # no back-off in a unit test
    stats = sink.run(until_idle_s=0.0)
    assert seen_by_others == [0, 0]  # the good decisions were never committed on their own
    assert stats.db_errors == 1 and len(consumer.commits) == 1
    assert _count(sink.engine, "decisions") == 3 and _count(sink.engine, "quarantine") == 1


def test_an_outage_while_isolating_a_bad_row_quarantines_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    consumer = TopicsConsumer(_logs())
    sink = _sink(tmp_path, consumer)
    real = store.write_events
    failures = iter(
        [
            DataError("INSERT", {}, Exception("value too long")),  # the batch: isolate...
            OperationalError("INSERT", {}, Exception("connection refused")),  # ...db gone
        ]
    )

    def flaky(conn: Any, events: Any) -> int:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return real(conn, events)

    monkeypatch.setattr(store, "write_events", flaky)
    monkeypatch.setattr(sink._stop, "wait", lambda _s: False)
    stats = sink.run(until_idle_s=0.0)
    assert stats.db_errors == 1 and stats.written["events"] == 3
    engine = store.make_engine(_url(tmp_path))
    assert _count(engine, "quarantine") == 0 and _count(engine, "events") == 3


def test_a_database_outage_backs_off_rewinds_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    consumer = TopicsConsumer(_logs())
    sink = _sink(tmp_path, consumer)
    real = store.write_events
    failures = iter([True, True, True])

    def flaky(conn: Any, events: Any) -> int:
        if next(failures, False):
            raise OperationalError("INSERT", {}, Exception("server closed the connection"))
        return real(conn, events)

    waits: list[float] = []

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        return False

    monkeypatch.setattr(store, "write_events", flaky)
    monkeypatch.setattr(sink._stop, "wait", wait)
    stats = sink.run(until_idle_s=0.0)
    assert stats.db_errors == 3 and stats.written["events"] == 3
    assert stats.read == {"events": 4, "outcomes": 1}  # counted once, when they landed
    assert waits == [0.5, 1.0, 2.0]  # exponential back-off
    assert consumer.seeks.count((("events", 0), 0)) == 3  # each failed batch re-read
    assert consumer.commits == [{("events", 0): 4, ("outcomes", 0): 1}]  # only once it landed
    assert _count(store.make_engine(_url(tmp_path)), "quarantine") == 0


def test_a_database_down_at_start_is_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    consumer = TopicsConsumer(_logs())
    sink = _sink(tmp_path, consumer)
    real = store.create_schema
    failures = iter([True, True])

    def flaky(engine: Any) -> None:
        if next(failures, False):
            raise OperationalError("CONNECT", {}, Exception("connection refused"))
        real(engine)

    monkeypatch.setattr(store, "create_schema", flaky)
    monkeypatch.setattr(sink._stop, "wait", lambda _s: False)
    stats = sink.run(until_idle_s=0.0)
    assert stats.db_errors == 2 and stats.written["events"] == 3


@pytest.mark.parametrize(
    ("error", "data"),
    [
        (
            DataError("INSERT", {}, Exception("value too long for type character varying(128)")),
            True,
        ),
        (OperationalError("INSERT", {}, Exception("server closed the connection")), False),
        (OverflowError("Python int too large to convert to SQLite INTEGER"), True),
    ],
)
def test_data_errors_are_told_from_outages(error: BaseException, data: bool) -> None:
    assert is_data_error(error) is data


def test_quarantined_records_can_be_landed_again_after_a_fix(tmp_path: Path) -> None:
    engine = _refusing_store(tmp_path)
    _sink(tmp_path, TopicsConsumer(_mixed_logs()), engine).run(until_idle_s=0.0)
    first = {q.source_topic: q.quarantined_at for q in store.read_quarantine(engine)}

    still = retry_quarantined(engine)  # nothing fixed yet
    assert (still.landed, still.refused) == (0, 3)
    with engine.begin() as conn:  # the fix (e.g. a wider column)
        conn.exec_driver_sql("DROP TRIGGER refuse_evt1")
    done = retry_quarantined(engine)
    assert (done.landed, done.refused) == (1, 2)
    assert _count(engine, "decisions") == 3
    left = store.read_quarantine(engine)
    assert {q.source_topic for q in left} == {"events.dlq", "outcomes"}
    assert all(q.quarantined_at == first[q.source_topic] for q in left)  # first seen kept


def test_the_quarantine_command_lists_and_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _refusing_store(tmp_path)
    _sink(tmp_path, TopicsConsumer(_mixed_logs()), engine).run(until_idle_s=0.0)
    monkeypatch.setenv("DECISIONFLOW_DATABASE_URL", _url(tmp_path))
    runner = CliRunner()

    listed = runner.invoke(cli, ["sink", "quarantine", "--raw"])
    assert listed.exit_code == 0, listed.output
    assert "quarantine: 3 records" in listed.output
    assert "decisions[0]@1 decisions store" in listed.output and "refused" in listed.output
    assert "outcomes[0]@1 outcomes parse" in listed.output
    assert '{"not": json' in listed.output  # --raw shows the value

    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER refuse_evt1")
    retried = runner.invoke(cli, ["sink", "quarantine", "--retry", "--kind", "decisions"])
    assert retried.exit_code == 0, retried.output
    assert "retried: 1 landed, 0 still refused" in retried.output
    assert "quarantine: 0 records (decisions)" in retried.output
    assert _count(engine, "quarantine") == 2


# ---------------------------------------------------------------------- stopping


class _DownStore:
    """The database refuses every connection; counts the attempts."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.attempts = 0
        monkeypatch.setattr(store, "write_events", self.fail)

    def fail(self, conn: Any, events: Any) -> int:
        self.attempts += 1
        raise OperationalError("INSERT", {}, Exception("connection refused"))


def test_sigterm_during_back_off_stops_the_sink_promptly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    consumer = TopicsConsumer(_logs())
    sink = _sink(tmp_path, consumer)
    sink.retry_delays_s = (60.0, 60.0)  # a long back-off: the test would sit it out
    down = _DownStore(monkeypatch)

    def terminate_once_backing_off() -> None:
        deadline = time.monotonic() + 10
        while not down.attempts and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # in the back-off wait by now
        os.kill(os.getpid(), signal.SIGTERM)

    restore = stop_on_signals(sink, grace_s=None)
    try:
        threading.Thread(target=terminate_once_backing_off, daemon=True).start()
        started = time.monotonic()
        stats = sink.run()
        elapsed = time.monotonic() - started
    finally:
        restore()
    assert elapsed < 5
    assert down.attempts == 1 and stats.db_errors == 1
    assert consumer.commits == []  # nothing landed, nothing committed: re-read on restart


def test_a_second_signal_or_the_grace_period_exits_at_once(tmp_path: Path) -> None:
    sink = _sink(tmp_path, TopicsConsumer({}))
    exits: list[int] = []
    before = signal.getsignal(signal.SIGTERM)
    restore = stop_on_signals(sink, grace_s=1.0, exit_now=exits.append)
    try:
        signal.raise_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        while not sink.stopping and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sink.stopping and exits == []
        signal.raise_signal(signal.SIGINT)
        assert exits == [128 + signal.SIGINT]
        while len(exits) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert exits[1:] == [1]  # the sink did not return within the grace period
    finally:
        restore()
    assert signal.getsignal(signal.SIGTERM) is before


_SCRIPT = """
import sys, time
from sqlalchemy.exc import OperationalError
from storage import store
from workers.commands.sink_cmd import run_until_stopped
from workers.cli import cli
from workers.kafka_client import RawRecord
from workers.settings import SinkSettings
from workers.sink import DecisionSink

mode, url, ready = sys.argv[1], sys.argv[2], sys.argv[3]

class Consumer:
    def __init__(self):
        self.commits = []
        self.done = False
    def assignment(self):
        return {("events", 0)}
    def poll(self, timeout_ms, max_records):
        if mode == "hung-poll":
            open(ready, "w").close()
            time.sleep(120)  # a client stuck past its timeout
        if self.done:
            return []
        self.done = True
        return [RawRecord("events", 0, 0, None, b'{}')]
    def seek(self, tp, offset):
        self.done = False
    def commit(self, offsets):
        self.commits.append(offsets)
    def close(self):
        pass

def down(conn, items):
    open(ready, "w").close()
    raise OperationalError("INSERT", {}, Exception("connection refused"))

store.write_quarantine = down
consumer = Consumer()
sink = DecisionSink(SinkSettings(_env_file=None, database_url=url))
sink.retry_delays_s = (60.0, 60.0)
sink._consumer = lambda: consumer
stats = run_until_stopped(sink, None, stop_grace_s=1.0)
print(f"stopped db_errors={stats.db_errors} commits={len(consumer.commits)}", flush=True)
"""


@pytest.mark.parametrize(("mode", "code"), [("backing-off", 0), ("hung-poll", 1)])
def test_sigterm_stops_a_sink_process_within_seconds(tmp_path: Path, mode: str, code: int) -> None:
    """A real process: SIGTERM ends a back-off wait (clean exit), and a sink stuck where it
    cannot look (a hung client call) is ended by the grace period (status 1)."""
    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_SCRIPT), mode, _url(tmp_path), str(ready)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), proc.communicate(timeout=5)
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        out, err = proc.communicate(timeout=15)
        elapsed = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == code, err[-2000:]
    assert elapsed < 5
    if mode == "backing-off":
        assert "stopped db_errors=1 commits=0" in out
    engine = store.make_engine(_url(tmp_path))
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(store.quarantine)).scalar() == 0


def test_every_flows_decisions_and_outcomes_land(tmp_path: Path) -> None:
    mortgage = sample_decision(7, datetime(2026, 12, 1, tzinfo=UTC)).model_copy(
        update={"model_name": "mortgage"}
    )
    outcome = Outcome(
        event_id=mortgage.event_id,
        entity_id=mortgage.entity_id,
        label="yes",
        observed_at=datetime(2026, 12, 2, tzinfo=UTC),
    )
    consumer = TopicsConsumer(
        {
            "decisions": [_decision(1)],
            "decisions.mortgage": [mortgage.model_dump_json().encode()],
            "outcomes.mortgage": [outcome.model_dump_json().encode()],
        }
    )
    url = SecretStr(_url(tmp_path))
    settings = SinkSettings(_env_file=None, database_url=url, flows=["credit_data", "mortgage"])  # type: ignore[call-arg]
    sink = DecisionSink(settings)
    sink._consumer = lambda: cast(Consumer, consumer)  # type: ignore[method-assign]
    sink.run(until_idle_s=0.5)
    frame = store.decisions_with_outcomes(sink.engine, model_name="mortgage")
    assert list(frame["event_id"]) == [mortgage.event_id] and list(frame["label"]) == ["yes"]
    assert _count(sink.engine, "decisions") == 2
