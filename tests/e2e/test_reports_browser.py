"""The analyst reports of a real streaming run, opened in headless Chromium.

Real Kafka (uuid topics) and PostgreSQL (own schema): a registry champion and a challenger
(gate-refused, on the ``challenger`` alias) decide dataset rows through the transactional
decision loop with a champion/challenger split and shadow scoring; a few malformed events go to
the DLQ; outcomes are published; the sink lands everything. ``build_reports`` (the code of
``decisionflow report`` and the evaluate DAG) writes the three reports and the index, and each
page is opened in Debian's Chromium through Playwright: no console error, no failed request,
every image decoded (naturalWidth > 0), no script element, a full-page screenshot kept at
``var/artifacts/report-<kind>.png``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from analytics.reports import build_index, build_reports
from decisioning.arms import ArmConfig
from decisioning.policy import load_policy
from models.data import holdout_split, load_frame
from models.gate import evaluate_gate
from models.registry import ModelRegistry
from models.spec import load_spec
from models.training import evaluate, train_family
from tests.e2e.airflow_harness import REPO
from tests.e2e.pipeline import stream_into_store
from tests.integration.streaming import make_topics
from workers.engine import DecisionEngine
from workers.producer import EventProducer, events_from_frame

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO / "var" / "artifacts"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
N_EVENTS = 600
N_MALFORMED = 4


def _fill_store(
    tmp_path: Path, bootstrap: str, make_topic: Callable[..., str], group_id: str, pg_url: str
) -> ModelRegistry:
    """A real streaming run into the store; returns the registry it decided with."""
    spec = load_spec("credit_data")
    train, live = holdout_split(load_frame(spec), spec, test_size=0.25, seed=3)
    train, holdout = holdout_split(train, spec, test_size=0.2, seed=4)
    registry = ModelRegistry(tmp_path / "registry")
    champion_model = train_family("logreg", train, spec)
    v1 = registry.register(champion_model, name="credit")
    registry.promote("credit", v1, reason="gate passed: no champion", verdict={
        "promote": True, "reasons": ["no champion"]})  # fmt: skip
    challenger_model = train_family("logreg", train, spec, {"C": 1e-3})
    v2 = registry.register(challenger_model, name="credit")
    verdict = evaluate_gate(
        evaluate(challenger_model, holdout).headline(), evaluate(champion_model, holdout).headline()
    ).to_dict()
    registry.promote("credit", v2, "challenger", reason="gate refused", verdict=verdict)

    topics = make_topics(make_topic, partitions=2)
    live = live.iloc[:N_EVENTS]
    with EventProducer(bootstrap, topic=topics.events) as producer:
        for entity_id, features in events_from_frame(
            live, spec.feature_names, spec.entity_key.column
        ):
            producer.send(entity_id, features, event_id=f"{entity_id}-rpt")
        for i in range(N_MALFORMED):
            producer.send_raw(f"bad-{i}", b"{not json" if i % 2 else b'{"event_id": 1}')
    engine = DecisionEngine(
        registry.load("credit", "champion"),
        load_policy("credit_v1"),
        spec,
        arms=ArmConfig(challenger_share=0.3, shadow_share=0.5),
        challenger=registry.load("credit", "challenger"),
        model_name="credit",
    )
    fill = stream_into_store(
        bootstrap=bootstrap,
        topics=topics,
        group_id=group_id,
        engine=engine,
        live=live,
        spec=spec,
        n_events=N_EVENTS,
        pg_url=pg_url,
    )
    assert fill.labels > 400
    assert fill.counts["decisions"] == N_EVENTS, fill.stats.summary()
    assert fill.counts["shadow_decisions"] > 0 and fill.counts["dead_letters"] == N_MALFORMED
    return registry


def _open(browser: Any, page_path: Path, shot: Path) -> dict[str, Any]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in (
        "error", "warning") else None)  # fmt: skip
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    page.goto(page_path.as_uri(), wait_until="load")
    facts: dict[str, Any] = page.evaluate(
        """() => ({
            title: document.title,
            images: Array.from(document.images).map(i => ({
                ok: i.complete && i.naturalWidth > 0, w: i.naturalWidth, alt: i.alt})),
            scripts: document.scripts.length,
            h2: Array.from(document.querySelectorAll('h2')).map(h => h.textContent),
            how: document.querySelectorAll('p.how').length,
            empty: document.querySelectorAll('.empty').length,
            tables: document.querySelectorAll('table').length,
            overflowing: Array.from(document.querySelectorAll('section'))
                .filter(s => s.scrollWidth > s.clientWidth + 1)
                .map(s => s.querySelector('h2')?.textContent),
        })"""
    )
    page.screenshot(path=str(shot), full_page=True)
    page.close()
    facts["problems"] = problems
    return facts


def test_reports_of_a_real_run_render_cleanly_in_chromium(
    tmp_path: Path, bootstrap: str, make_topic: Callable[..., str], group_id: str, pg_url: str
) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is missing: install the dev extra (pip install -e '.[dev]')")
    registry = _fill_store(tmp_path, bootstrap, make_topic, group_id, pg_url)
    reports = tmp_path / "reports"
    day = datetime.now(UTC).date().isoformat()
    paths = build_reports(pg_url, reports, day, registry=registry, model_name="credit")
    for i in range(6):  # a day with several retrain runs: long links in the index
        run = reports / day / f"retrain-manual__{day}T08:0{i}:26.123456+00:00"
        run.mkdir()
        (run / "evaluation.html").write_text("<html><body>retrain</body></html>")
    build_index(reports)

    folder = reports / day
    metrics = pd.read_parquet(folder / "evaluation-metrics.parquet")
    assert {"champion v1", "challenger v2"} <= set(metrics["model"])
    assert (metrics["roc_auc"] > 0.6).all()
    dlq = pd.read_csv(folder / "operations-dlq.csv")
    assert int(dlq["dead_letters"].sum()) == N_MALFORMED
    arms = pd.read_csv(folder / "operations-by_arm.csv")
    assert set(arms["arm"]) == {"champion", "challenger"} and arms["n"].sum() == N_EVENTS
    psi = pd.read_parquet(folder / "drift-psi.parquet")
    assert len(psi) == len(load_spec("credit_data").feature_names)

    expected_images = {"evaluation": 6, "operations": 5, "drift": 2, "index": 0}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            for kind, n_images in expected_images.items():
                shot = ARTIFACTS / f"report-{kind}.png"
                shot.unlink(missing_ok=True)
                facts = _open(browser, paths[kind], shot)
                assert facts["problems"] == [], (kind, facts["problems"])
                assert len(facts["images"]) == n_images, (kind, facts["images"])
                assert all(img["ok"] for img in facts["images"]), (kind, facts["images"])
                assert facts["scripts"] == 0 and facts["tables"] >= 1
                assert facts["overflowing"] == [], (kind, "content wider than its card")
                if kind != "index":
                    assert facts["empty"] == 0, (kind, "unexpected empty state")
                    assert facts["how"] == len(facts["h2"]) >= 2  # a reading line per section
                assert shot.is_file() and shot.stat().st_size > 20_000
        finally:
            browser.close()
