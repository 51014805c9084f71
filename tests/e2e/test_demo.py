"""`make demo`'s command path, smaller: every event is decided or dead-lettered, the DAGs ran,
the reports exist and are not empty."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

from kafka.admin import KafkaAdminClient

from tests.e2e.airflow_harness import free_port

REPO = Path(__file__).resolve().parents[2]


def test_demo_accounts_for_every_event_and_writes_reports(
    tmp_path: Path, bootstrap: str, pg_url: str
) -> None:
    prefix = f"demo-{uuid.uuid4().hex[:8]}-"
    cmd = [
        sys.executable,
        "-m",
        "devtools.demo",
        "--home",
        str(tmp_path / "home"),
        "--topic-prefix",
        prefix,
        "--database-url",
        pg_url,
        "--repeat",
        "1",
        "--families",
        "logreg",
        "--malformed",
        "0.05",
        "--airflow-port",
        str(free_port()),
        "--timeout",
        "300",
    ]
    try:
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    finally:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        mine = [t for t in admin.list_topics() if t.startswith(prefix)]
        if mine:
            admin.delete_topics(mine)
        admin.close()
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    assert "decisionflow demo summary" in proc.stdout
    summary = json.loads((tmp_path / "home" / "demo" / "summary.json").read_text())

    stream = summary["stream"]
    assert stream["unaccounted"] == 0
    assert stream["decisions"] + stream["dead_letters"] == stream["records_sent"]
    assert stream["decisions"] == summary["rows"]["held_back"]
    assert stream["dead_letters"] > 0 and all(stream["dlq_by_reason"].values())
    assert set(stream["decisions_by_outcome"]) <= {"approve", "review", "decline"}
    assert stream["with_reason_codes"] == stream["decisions"]
    assert stream["model_versions"] == [summary["champion"]["version"]]
    assert summary["champion"]["holdout"]["roc_auc"] > 0.75

    assert set(summary["timings"]) >= {
        "3 retrain DAG (Airflow) -> first champion",
        "7 evaluate DAG -> reports",
    }
    reports = [Path(p) for p in summary["reports"]]
    assert reports and all(p.exists() and p.stat().st_size > 0 for p in reports)
    assert any(p.name == "metrics.json" or p.suffix == ".csv" for p in reports)
