"""Generate (and check) the committed contract files in ``docs/contracts/``.

``python -m decisioning.contracts [--check] [DIR]`` writes ``<name>.schema.json`` (JSON Schema
draft 2020-12) and ``examples/<name>.json`` for every wire record. ``--check`` writes nothing
and exits 1 when a committed file is missing or out of date.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from decisioning.audit import feature_hash
from decisioning.contracts import (
    DeadLetter,
    Decision,
    Event,
    Outcome,
    Reason,
    encode_record,
)

__all__ = [
    "DEFAULT_DIR",
    "RECORDS",
    "check_contract_files",
    "contract_files",
    "examples",
    "main",
    "write_contract_files",
]

#: docs/contracts of the repository this package sits in.
DEFAULT_DIR = Path(__file__).resolve().parent.parent / "docs" / "contracts"

RECORDS: dict[str, type[BaseModel]] = {
    "event": Event,
    "decision": Decision,
    "outcome": Outcome,
    "dead_letter": DeadLetter,
}

_JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def examples() -> dict[str, BaseModel]:
    """One valid, deterministic example of every wire record."""
    event_time = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
    decided_at = datetime(2026, 11, 23, 12, 0, 0, 42_500, tzinfo=UTC)
    features: dict[str, float | int | str | bool | None] = {
        "Seniority": 1,
        "Home": "rent",
        "Time": 60,
        "Age": 30,
        "Marital": "married",
        "Records": "no",
        "Job": "fixed",
        "Expenses": 73,
        "Income": 129.0,
        "Assets": 0.0,
        "Debt": 0.0,
        "Amount": 800,
        "Price": 846,
    }
    event = Event(
        event_id="app-000001",
        entity_id="cust-4711",
        event_time=event_time,
        features=features,
        producer="loan-frontend",
    )
    decision = Decision(
        event_id=event.event_id,
        entity_id=event.entity_id,
        decision="review",
        score=0.31,
        threshold=0.25,
        reasons=[
            Reason(
                code="R01",
                text="Short employment history",
                feature="Seniority",
                contribution=0.12,
            ),
            Reason(
                code="R05",
                text="High loan amount relative to price",
                feature="Amount",
                contribution=0.04,
            ),
        ],
        rule=None,
        segment="renters",
        model_name="credit_mlp",
        model_version=3,
        policy_name="credit",
        policy_version="1",
        arm="champion",
        shadow=False,
        feature_hash=feature_hash(features),
        event_time=event_time,
        decided_at=decided_at,
        latency_ms=42.5,
    )
    outcome = Outcome(
        event_id=event.event_id,
        entity_id=event.entity_id,
        label="good",
        observed_at=datetime(2027, 5, 23, 0, 0, 0, tzinfo=UTC),
    )
    dead = DeadLetter(
        reason="invalid_json",
        error_class="InvalidJsonError",
        error_message="invalid JSON: Expecting value at line 1 column 1",
        stage="decode",
        source_topic="events",
        source_partition=0,
        source_offset=1234,
        source_key="cust-4711",
        raw="bm90IGpzb24=",
        raw_size=8,
        raw_truncated=False,
        failed_at=decided_at,
    )
    return {"event": event, "decision": decision, "outcome": outcome, "dead_letter": dead}


def _dump(value: object) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def contract_files() -> dict[str, str]:
    """Relative path -> text of every contract file (schemas and examples)."""
    out: dict[str, str] = {}
    for name, model in RECORDS.items():
        schema = {"$schema": _JSON_SCHEMA_DIALECT, **model.model_json_schema(mode="validation")}
        out[f"{name}.schema.json"] = _dump(schema)
    for name, record in examples().items():
        out[f"examples/{name}.json"] = _dump(json.loads(encode_record(record)))
    return out


def write_contract_files(directory: Path = DEFAULT_DIR) -> list[Path]:
    """Write every contract file under ``directory``; returns the paths written."""
    written: list[Path] = []
    for rel, text in contract_files().items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def check_contract_files(directory: Path = DEFAULT_DIR) -> list[str]:
    """Relative paths of contract files that are missing or differ from the generated text."""
    stale: list[str] = []
    for rel, text in contract_files().items():
        path = directory / rel
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(rel)
    return stale


def main(argv: list[str] | None = None) -> int:
    """Command line: write the contract files, or with ``--check`` report stale ones."""
    parser = argparse.ArgumentParser(prog="python -m decisioning.contracts", description=__doc__)
    parser.add_argument("directory", nargs="?", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--check", action="store_true", help="exit 1 if files are out of date")
    args = parser.parse_args(argv)
    if args.check:
        stale = check_contract_files(args.directory)
        for rel in stale:
            print(f"out of date: {args.directory / rel}", file=sys.stderr)
        return 1 if stale else 0
    for path in write_contract_files(args.directory):
        print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover - thin entry point
    raise SystemExit(main())
