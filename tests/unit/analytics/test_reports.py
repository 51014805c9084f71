"""Analyst reports from tiny frames: empty states, escaping, exports and the index."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analytics.evaluation import drift_table
from analytics.reports import (
    build_day_reports,
    build_drift_report,
    build_evaluation_report,
    build_index,
    build_operations_report,
    evaluation_tables,
    operations_tables,
)
from analytics.reports.operations_report import NO_METHOD
from decisioning.contracts import Decision
from models.metrics import compute_metrics
from models.spec import load_spec
from storage import store

pytestmark = pytest.mark.unit

DAY = "2026-11-20"
EVIL = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def _decisions(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t0 = datetime(2026, 11, 20, 8, tzinfo=UTC)
    score = rng.uniform(0, 1, n)
    label = np.where(rng.uniform(0, 1, n) < score, "bad", "good")
    decision = np.select([score < 0.25, score < 0.5], ["approve", "review"], "decline")
    return pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(n)],
            "decision": decision,
            "score": score,
            "segment": rng.choice([None, "renters", EVIL], n),
            "model_name": "credit",
            "model_version": pd.array(rng.choice([1, 2], n), dtype="Int64"),
            "policy_name": "credit",
            "policy_version": "1",
            "arm": "champion",
            "shadow": False,
            "decided_at": pd.to_datetime([t0 + timedelta(minutes=3 * i) for i in range(n)]),
            "latency_ms": rng.gamma(2.0, 40.0, n),
            "label": label,
        }
    ).assign(arm=lambda f: np.where(f["model_version"] == 2, "challenger", "champion"))


def _html(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_each_report_renders_an_explicit_empty_state(tmp_path: Path) -> None:
    pages = [
        build_evaluation_report(tmp_path, DAY, None),
        build_operations_report(tmp_path, DAY, pd.DataFrame()),
        build_drift_report(tmp_path, DAY, None),
    ]
    for page in pages:
        html = _html(page)
        assert "No data yet" in html and 'role="status"' in html
        assert "<img" not in html  # no empty charts
        assert "How to read this" in html
    assert "<title>Model evaluation" in _html(pages[0])
    # the empty tables are exported all the same (with their header)
    assert pd.read_csv(tmp_path / "operations-volume.csv").empty
    assert list(pd.read_parquet(tmp_path / "drift-psi.parquet").columns)[:3] == [
        "feature",
        "type",
        "psi",
    ]


def test_data_values_are_escaped_not_executed(tmp_path: Path) -> None:
    decisions = _decisions()
    dlq = pd.DataFrame({"reason": [EVIL, "malformed_json"], "stage": ["parse", "parse"]})
    page = build_operations_report(tmp_path, DAY, decisions, dlq)
    html = _html(page)
    assert "<script" not in html.lower()
    assert html.count(ESCAPED) >= 2  # the segment row and the dead-letter reason

    spec = load_spec("credit_data")
    ref = pd.DataFrame({"Home": ["rent", "owner"] * 50})
    recent = pd.DataFrame({"Home": [EVIL] * 60 + ["rent"] * 40})
    drift = drift_table(ref.reindex(columns=spec.feature_names), recent, spec)
    html = _html(build_drift_report(tmp_path, DAY, drift, ref, recent))
    assert "<script" not in html.lower() and ESCAPED in html

    scored = pd.DataFrame({"model": [EVIL] * 4, "y": [0, 1, 0, 1], "score": [0.1, 0.9, 0.4, 0.6]})
    verdict = {"promote": False, "reasons": [EVIL]}
    html = _html(build_evaluation_report(tmp_path, DAY, scored, verdict=verdict))
    assert "<script" not in html.lower() and html.count(ESCAPED) >= 2


def test_exports_match_the_tables_behind_the_charts(tmp_path: Path) -> None:
    decisions = _decisions()
    dlq = pd.DataFrame({"reason": ["malformed_json"] * 3 + ["too_large"], "stage": "parse"})
    build_operations_report(tmp_path, DAY, decisions, dlq)
    tables = operations_tables(decisions, dlq)
    for key in ("by_segment", "by_arm", "dlq", "latency"):
        expected = tables[key].reset_index(drop=True)
        csv = pd.read_csv(tmp_path / f"operations-{key}.csv", keep_default_na=False)
        parquet = pd.read_parquet(tmp_path / f"operations-{key}.parquet")
        assert list(csv.columns) == list(expected.columns) == list(parquet.columns)
        assert len(csv) == len(expected) == len(parquet)
        for col in expected.columns:
            if pd.api.types.is_numeric_dtype(expected[col]):
                np.testing.assert_allclose(parquet[col].to_numpy(float), expected[col], rtol=1e-12)
                np.testing.assert_allclose(csv[col].to_numpy(float), expected[col], rtol=1e-9)
            else:
                assert list(parquet[col].astype(str)) == list(expected[col].astype(str))
    by_dlq = tables["dlq"].set_index("reason")["dead_letters"]
    assert by_dlq.to_dict() == {"malformed_json": 3, "too_large": 1}
    # rates of each segment add up to 1 and the volume covers every decision
    seg = tables["by_segment"]
    total = seg[["approve_rate", "review_rate", "decline_rate", "other_rate"]].sum(axis=1)
    np.testing.assert_allclose(total, 1.0)
    assert int(tables["volume"]["total"].sum()) == len(decisions)
    assert set(seg["segment"]) == {"(default)", "renters", EVIL}
    # every table linked from the page exists in both formats
    html = _html(tmp_path / "operations.html")
    for link in re.findall(r'href="(operations-[^"]+)"', html):
        assert (tmp_path / link).is_file(), link


def test_evaluation_metrics_compare_models_on_their_own_rows(tmp_path: Path) -> None:
    d = _decisions(400, seed=2)
    scored = pd.DataFrame(
        {"model": d["arm"] + " v" + d["model_version"].astype(str),
         "y": (d["label"] == "bad").astype(int), "score": d["score"]}
    )  # fmt: skip
    tables = evaluation_tables(scored, threshold=0.5)
    assert set(tables["metrics"]["model"]) == {"champion v1", "challenger v2"}
    for row in tables["metrics"].itertuples():
        part = scored[scored["model"] == row.model]
        m = compute_metrics(part["y"].to_numpy(), part["score"].to_numpy(), 0.5)
        assert row.n == m.n and row.f1 == pytest.approx(m.f1)
        assert row.roc_auc == pytest.approx(m.roc_auc) and row.pr_auc == pytest.approx(m.pr_auc)
    conf = tables["confusion"].set_index("model")
    assert int(conf.sum(axis=1).sum()) == len(scored)
    assert tables["roc"]["fpr"].between(0, 1).all() and len(tables["value_curve"]) > 0
    imp = pd.DataFrame({"model": "champion v1", "feature": ["Age", "Income"], "importance": [1, 2]})
    page = build_evaluation_report(
        tmp_path, DAY, scored, importance=imp, verdict={"promote": True, "reasons": ["no champion"]}
    )
    html = _html(page)
    assert html.count("<img") == 6  # confusion, ROC, PR, calibration, value, importance
    assert "No data yet" not in html and "Promoted" in html
    back = pd.read_parquet(tmp_path / "evaluation-metrics.parquet")
    pd.testing.assert_frame_equal(back, tables["metrics"], check_dtype=False)


def test_day_reports_and_index_list_every_date_newest_first(tmp_path: Path) -> None:
    spec = load_spec("credit_data")
    decisions = _decisions(120)
    for day in ("2026-11-18", "2026-11-20", "2026-11-19"):
        paths = build_day_reports(tmp_path, day, decisions=decisions, spec=spec)
        assert {p.name for k, p in paths.items() if k != "index"} == {
            "evaluation.html",
            "operations.html",
            "drift.html",
        }
    (tmp_path / "2026-11-19" / "retrain-manual_1").mkdir()
    (tmp_path / "2026-11-19" / "retrain-manual_1" / "evaluation.html").write_text("x")
    (tmp_path / "not-a-day").mkdir()
    html = _html(build_index(tmp_path))
    days = re.findall(r"<td>(\d{4}-\d{2}-\d{2})</td>", html)
    assert days == ["2026-11-20", "2026-11-19", "2026-11-18"]
    assert 'href="2026-11-20/operations.html"' in html
    assert 'href="2026-11-19/retrain-manual_1/evaluation.html"' in html
    assert "not-a-day" not in html
    # the evaluation page shows live labels named as in the data
    page = _html(tmp_path / "2026-11-20" / "evaluation.html")
    assert "&#39;predicted good&#39; for an actual &#39;bad&#39;" in page


def test_index_of_an_empty_folder_says_so(tmp_path: Path) -> None:
    assert "No data yet" in _html(build_index(tmp_path / "reports"))


def _stored(i: int, decision: str, method: str | None) -> Decision:
    t = datetime(2026, 11, 20, 8, tzinfo=UTC) + timedelta(minutes=i)
    return Decision.model_validate(
        {"event_id": f"e{i}", "entity_id": f"a{i}", "decision": decision, "score": 0.4,
         "threshold": 0.5, "reason_method": method, "model_name": "credit", "model_version": 1,
         "policy_name": "credit", "policy_version": "1", "arm": "champion", "shadow": False,
         "feature_hash": "0" * 64, "event_time": t, "decided_at": t, "latency_ms": 5.0}
    )  # fmt: skip


def test_operations_report_counts_decisions_per_reason_method(tmp_path: Path) -> None:
    engine = store.make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    store.create_schema(engine)
    plan = [("decline", "tree_path")] * 3 + [("decline", None)] + [("review", "linear")] * 2
    plan += [("approve", None)] * 4
    with engine.begin() as conn:
        store.write_decisions(conn, [_stored(i, d, m) for i, (d, m) in enumerate(plan)])
    page = build_operations_report(tmp_path, DAY, store.decisions_with_outcomes(engine))
    html = _html(page)
    assert "How reasons were computed" in html and "Decisions by reason method" in html
    assert "none (band, rule or fallback)" in html
    table = pd.read_csv(tmp_path / "operations-reason_methods.csv")
    rows = {(r.decision, r.reason_method): r for r in table.itertuples()}
    assert {k: r.decisions for k, r in rows.items()} == {
        ("approve", NO_METHOD): 4,
        ("review", "linear"): 2,
        ("decline", "tree_path"): 3,
        ("decline", NO_METHOD): 1,
    }
    assert list(table["decision"]) == ["approve", "review", "decline", "decline"]
    assert rows["decline", "tree_path"].share_of_decision == pytest.approx(0.75)
    assert rows["decline", "tree_path"].share_of_all == pytest.approx(0.3)
    assert "75.0%" in html and "30.0%" in html


def test_the_root_index_lists_each_flows_reports_under_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from analytics.reports import refresh_indexes

    root = tmp_path / "reports"
    monkeypatch.setenv("DECISIONFLOW_REPORTS_DIR", str(root))
    for flow in ("credit_data", "mortgage"):
        (root / flow / "2026-11-20").mkdir(parents=True)
        (root / flow / "2026-11-20" / "evaluation.html").write_text("x")
    refresh_indexes(root / "mortgage")
    flow_index = _html(root / "mortgage" / "index.html")
    assert 'href="2026-11-20/evaluation.html"' in flow_index and "credit_data" not in flow_index
    top = _html(root / "index.html")
    assert 'href="credit_data/2026-11-20/evaluation.html"' in top
    assert 'href="mortgage/2026-11-20/evaluation.html"' in top
    assert "mortgage · Model evaluation" in top
