"""The store on the stack's PostgreSQL: Kafka offsets beyond 32 bits, old stores upgraded."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, Column, Engine, Integer, MetaData, Table, inspect

from decisioning.contracts import DeadLetter
from storage import store
from workers.testing import sample_dead_letter

FAR = 3_000_000_000  # an offset a busy partition reaches: beyond a 32-bit INTEGER


def _dead_letter(offset: int) -> DeadLetter:
    return sample_dead_letter(offset, at=datetime(2026, 12, 4, tzinfo=UTC))


def _stored_offsets(engine: Engine) -> list[int]:
    with engine.begin() as conn:
        rows = conn.execute(store.dead_letters.select()).all()
    return sorted(row.source_offset for row in rows)


def test_dead_letters_keep_offsets_beyond_32_bits(pg_url: str) -> None:
    engine = store.make_engine(pg_url)
    store.create_schema(engine)
    with store.transaction(engine) as conn:
        assert store.write_dead_letters(conn, [_dead_letter(FAR), _dead_letter(7)]) == 2
    assert _stored_offsets(engine) == [7, FAR]
    engine.dispose()


def test_create_schema_widens_an_old_dead_letter_table_in_place(pg_url: str) -> None:
    engine = store.make_engine(pg_url)
    old = MetaData()  # dead_letters as the first release created it: a 32-bit offset
    table = store.dead_letters
    Table(
        table.name,
        old,
        *(
            Column(c.name, c.type if c.name != "source_offset" else Integer(),
                   primary_key=c.primary_key, nullable=c.nullable)
            for c in table.columns
        ),
    )  # fmt: skip
    old.create_all(engine)
    with store.transaction(engine) as conn:
        store.write_dead_letters(conn, [_dead_letter(7)])

    store.create_schema(engine)
    store.create_schema(engine)  # idempotent once widened

    types = {c["name"]: c["type"] for c in inspect(engine).get_columns(table.name)}
    assert isinstance(types["source_offset"], BigInteger)
    with store.transaction(engine) as conn:
        store.write_dead_letters(conn, [_dead_letter(FAR)])
    assert _stored_offsets(engine) == [7, FAR]
    engine.dispose()
