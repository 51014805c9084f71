"""The store on SQLite in tmp_path: idempotent writes on every key, joins, time windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Column, Engine, MetaData, Table, insert, inspect

from decisioning.contracts import Decision, Event, Outcome
from models.spec import load_spec
from storage import store
from storage.store import QuarantinedRecord
from workers.testing import sample_dead_letter

T0 = datetime(2026, 11, 1, tzinfo=UTC)
SPEC = load_spec("credit_data")


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    eng = store.make_engine(f"sqlite:///{tmp_path / 'sub' / 'store.db'}")
    store.create_schema(eng)
    store.create_schema(eng)  # idempotent
    return eng


def _event(i: int, amount: float | None = 1000.0) -> Event:
    return Event(
        event_id=f"e{i}",
        entity_id=f"app-{i}",
        event_time=T0 + timedelta(hours=i),
        features={"Amount": amount, "Home": "rent", "Records": "no", "Seniority": i},
    )


def _decision(
    i: int,
    version: int = 1,
    arm: str = "champion",
    score: float = 0.3,
    method: str | None = None,
) -> Decision:
    return Decision.model_validate(
        {
            "reason_method": method,
            "event_id": f"e{i}",
            "entity_id": f"app-{i}",
            "decision": "approve" if score < 0.5 else "decline",
            "score": score,
            "threshold": 0.5,
            "reasons": [{"code": "R01", "text": "amount", "feature": "Amount"}],
            "model_name": "credit",
            "model_version": version,
            "policy_name": "credit_v1",
            "policy_version": "1",
            "arm": arm,
            "shadow": False,
            "feature_hash": "0" * 64,
            "event_time": T0 + timedelta(hours=i),
            "decided_at": T0 + timedelta(hours=i, seconds=1),
            "latency_ms": 1000.0,
        }
    )


def _outcome(i: int, label: str) -> Outcome:
    return Outcome(
        event_id=f"e{i}", entity_id=f"app-{i}", label=label, observed_at=T0 + timedelta(days=30)
    )


def test_writes_are_idempotent_on_their_keys(engine: Engine) -> None:
    with engine.begin() as conn:
        assert store.write_events(conn, [_event(1), _event(2), _event(1)]) == 2
        assert store.write_decisions(conn, [_decision(1), _decision(2)]) == 2
        assert store.write_decisions(conn, [_decision(1, arm="challenger")], shadow=True) == 1
        assert store.write_outcomes(conn, [_outcome(1, "bad")]) == 1
    with engine.begin() as conn:  # a replay of the same records changes nothing
        assert store.write_events(conn, [_event(1), _event(2)]) == 0
        assert store.write_decisions(conn, [_decision(1, score=0.9)]) == 0
        assert store.write_outcomes(conn, [_outcome(1, "good")]) == 0
    counts = store.row_counts(engine)
    assert counts == {
        "dead_letters": 0,
        "decisions": 2,
        "events": 2,
        "outcomes": 1,
        "quarantine": 0,
        "shadow_decisions": 1,
    }
    # the first write wins
    frame = store.decisions_with_outcomes(engine)
    assert frame.set_index("event_id").loc["e1", "score"] == pytest.approx(0.3)
    assert frame.set_index("event_id").loc["e1", "label"] == "bad"


def test_dead_letters_are_keyed_by_source_position(engine: Engine) -> None:
    dl = sample_dead_letter(7, at=T0)
    with engine.begin() as conn:
        assert store.write_dead_letters(conn, [dl, dl]) == 1
        assert store.write_dead_letters(conn, [dl.model_copy(update={"source_offset": 8})]) == 1
    assert store.row_counts(engine)["dead_letters"] == 2


def test_labelled_frame_joins_outcomes_to_decided_features(engine: Engine) -> None:
    with engine.begin() as conn:
        store.write_events(conn, [_event(i, amount=100.0 * i) for i in range(5)])
        store.write_events(conn, [_event(9, amount=None)])
        store.write_outcomes(conn, [_outcome(1, "bad"), _outcome(3, "good"), _outcome(9, "bad")])
    frame = store.labelled_frame(engine, SPEC)
    assert list(frame.columns[:2]) == [SPEC.entity_key.column, *SPEC.feature_names[:1]]
    assert list(frame[SPEC.entity_key.column]) == ["app-1", "app-3", "app-9"]
    assert list(frame[SPEC.label.column]) == ["bad", "good", "bad"]
    assert frame["Amount"].dtype == "float64"
    assert frame["Amount"].iloc[:2].tolist() == [100.0, 300.0]
    assert frame["Amount"].isna().iloc[2]
    assert frame["Income"].isna().all()  # not sent: missing, for the encoder to impute
    later = store.labelled_frame(engine, SPEC, since=T0 + timedelta(hours=2))
    assert list(later["event_id"]) == ["e3", "e9"]


def test_empty_store_reads_as_empty_frames(engine: Engine) -> None:
    frame = store.labelled_frame(engine, SPEC)
    assert len(frame) == 0 and SPEC.label.column in frame.columns
    assert len(store.decisions_with_outcomes(engine)) == 0
    assert len(store.recent_features(engine, T0, SPEC)) == 0


def test_decisions_with_outcomes_keeps_unlabelled_and_windows(engine: Engine) -> None:
    with engine.begin() as conn:
        store.write_decisions(conn, [_decision(i, score=i / 10) for i in range(6)])
        store.write_decisions(conn, [_decision(2, arm="challenger")], shadow=True)
        store.write_outcomes(conn, [_outcome(4, "bad")])
    frame = store.decisions_with_outcomes(engine, since=T0 + timedelta(hours=3))
    assert sorted(frame["event_id"]) == ["e3", "e4", "e5"]
    assert frame.set_index("event_id")["label"].isna().to_dict() == {
        "e3": True,
        "e4": False,
        "e5": True,
    }
    both = store.decisions_with_outcomes(engine, include_shadow=True)
    assert len(both) == 7 and both["shadow"].sum() == 0  # shadow rows keep their own flag
    assert str(both["model_version"].dtype) == "Int64"


def test_recent_features_window(engine: Engine) -> None:
    with engine.begin() as conn:
        store.write_events(conn, [_event(i, amount=float(i)) for i in range(4)])
    frame = store.recent_features(engine, T0 + timedelta(hours=2), SPEC)
    assert frame["Amount"].tolist() == [2.0, 3.0]
    assert list(frame.columns) == SPEC.feature_names
    raw = store.recent_features(engine)
    assert set(raw.columns) == {"Amount", "Home", "Records", "Seniority"}


def _methods(engine: Engine, include_shadow: bool = False) -> dict[str, str | None]:
    frame = store.decisions_with_outcomes(engine, include_shadow=include_shadow)
    methods = frame["reason_method"].astype(object).where(frame["reason_method"].notna(), None)
    return dict(zip(frame["event_id"], methods, strict=True))


def test_reason_method_is_stored(engine: Engine) -> None:
    with engine.begin() as conn:
        store.write_decisions(conn, [_decision(1, method="tree_path"), _decision(2)])
        store.write_decisions(conn, [_decision(3, method="linear")], shadow=True)
    assert _methods(engine) == {"e1": "tree_path", "e2": None}
    assert _methods(engine, include_shadow=True)["e3"] == "linear"


def test_create_schema_upgrades_an_old_store_in_place(tmp_path: Path) -> None:
    eng = store.make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    old = MetaData()  # the decision tables as the previous version created them
    for table in (store.decisions, store.shadow_decisions):
        cols = [c for c in table.columns if c.name != "reason_method"]
        Table(table.name, old, *(Column(c.name, c.type, primary_key=c.primary_key) for c in cols))
    old.create_all(eng)
    row = _decision(1).model_dump(exclude={"schema_version", "reason_method"})
    with eng.begin() as conn:
        conn.execute(insert(old.tables["decisions"]), [{**row, "reasons": []}])
    store.create_schema(eng)
    store.create_schema(eng)  # idempotent once upgraded
    for name in ("decisions", "shadow_decisions"):
        assert "reason_method" in {c["name"] for c in inspect(eng).get_columns(name)}
    with eng.begin() as conn:
        store.write_decisions(conn, [_decision(2, method="integrated_gradients")])
        store.write_decisions(conn, [_decision(3, method="occlusion")], shadow=True)
    assert _methods(eng) == {"e1": None, "e2": "integrated_gradients"}
    assert _methods(eng, include_shadow=True)["e3"] == "occlusion"
    assert "quarantine" in inspect(eng).get_table_names()  # a table newer than the store


def _held(
    offset: int, raw: bytes | None, error_class: str = "DataError", minute: int = 2
) -> QuarantinedRecord:
    return QuarantinedRecord(
        source_topic="decisions",
        source_partition=1,
        source_offset=offset,
        kind="decisions",
        stage="store",
        error_class=error_class,
        error="[22001] value too long for type character varying(256)",
        source_key=b"app-1",
        raw=raw,
        quarantined_at=T0 + timedelta(minutes=minute),
    )


def test_quarantine_keeps_raw_bytes_keyed_by_source_position(engine: Engine) -> None:
    raw = b'{"rule": "a\x00b"}\xff\xfe'  # not UTF-8, a NUL: still kept byte for byte
    big = 2**40  # Kafka offsets outgrow 32 bits
    with engine.begin() as conn:
        assert store.write_quarantine(conn, [_held(big, raw), _held(big, raw)]) == 1
        assert store.write_quarantine(conn, [_held(3, None, "OverflowError", minute=1)]) == 1
    assert store.row_counts(engine)["quarantine"] == 2
    newest, oldest = store.read_quarantine(engine)
    assert (newest.source_offset, newest.raw, newest.source_key) == (big, raw, b"app-1")
    assert newest.quarantined_at == T0 + timedelta(minutes=2)
    assert oldest.raw is None
    summary = store.quarantine_summary(engine)
    assert sorted(zip(summary["error_class"], summary["count"], strict=True)) == [
        ("DataError", 1),
        ("OverflowError", 1),
    ]
    assert store.read_quarantine(engine, kind="events") == []
    with engine.begin() as conn:
        assert store.delete_quarantined(conn, [("decisions", 1, 3), ("decisions", 1, 4)]) == 1
    assert [q.source_offset for q in store.read_quarantine(engine)] == [big]


def test_a_store_without_the_quarantine_table_reads_as_empty(tmp_path: Path) -> None:
    eng = store.make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    store.events.create(eng)
    assert store.read_quarantine(eng) == []
    assert len(store.quarantine_summary(eng)) == 0


def test_savepoints_stay_inside_the_transaction(engine: Engine) -> None:
    """A released SAVEPOINT is undone with its transaction (pysqlite would commit it)."""
    with pytest.raises(RuntimeError), store.transaction(engine) as conn:
        with conn.begin_nested():
            store.write_events(conn, [_event(1)])
        raise RuntimeError("the batch fails after its first savepoint")
    assert store.row_counts(engine)["events"] == 0
    with store.transaction(engine) as conn, conn.begin_nested():
        store.write_events(conn, [_event(1)])
    assert store.row_counts(engine)["events"] == 1


def test_one_flows_labelled_frame_and_decisions_leave_the_others_out(engine: Engine) -> None:
    other = [_decision(i).model_copy(update={"model_name": "mortgage"}) for i in (2, 3)]
    with engine.begin() as conn:
        store.write_events(conn, [_event(i) for i in range(4)])
        store.write_decisions(conn, [_decision(0), _decision(1), *other])
        store.write_outcomes(conn, [_outcome(i, "bad") for i in range(4)])
    assert list(store.labelled_frame(engine, SPEC, model_name="credit")["event_id"]) == [
        "e0",
        "e1",
    ]
    assert list(store.labelled_frame(engine, SPEC, model_name="mortgage")["event_id"]) == [
        "e2",
        "e3",
    ]
    assert len(store.labelled_frame(engine, SPEC)) == 4  # no flow named: every labelled event
    mortgage = store.decisions_with_outcomes(engine, model_name="mortgage")
    assert sorted(mortgage["event_id"]) == ["e2", "e3"]
    assert len(store.recent_features(engine, T0, SPEC, model_name="mortgage")) == 2
    assert len(store.recent_features(engine, T0, SPEC)) == 4
