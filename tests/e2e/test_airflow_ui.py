"""The Airflow UI lists both DAGs (with docs and params), seen by a real headless Chromium.

Starts ``airflow api-server`` of an isolated home on a free loopback port (simple auth manager
with ``all_admins``: no login form in the way), serialises the DAGs, and keeps a screenshot of
the DAG list at ``var/artifacts/airflow-ui.png``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.airflow_harness import REPO, free_port, make_env, migrate

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOT = REPO / "var" / "artifacts" / "airflow-ui.png"
DOCS_SHOT = REPO / "var" / "artifacts" / "airflow-ui-docs.png"
PARAMS_SHOT = REPO / "var" / "artifacts" / "airflow-ui-params.png"


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return bytes(resp.read())


def test_ui_lists_both_dags_with_docs_and_params(tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is missing: run `make browser`")
    port = free_port()
    env = make_env(tmp_path, f"sqlite:///{tmp_path / 'store.db'}", port=port)
    env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] = "True"
    migrate(env)
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run(
        [airflow, "dags", "reserialize"], env=env, check=True, capture_output=True, timeout=300
    )
    log = (tmp_path / "api-server.log").open("wb")
    server = subprocess.Popen(
        [airflow, "api-server", "--port", str(port), "--host", "127.0.0.1"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                _get(f"{base}/api/v2/monitor/health")
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail((tmp_path / "api-server.log").read_text()[-3000:])
                time.sleep(1)
        dags = json.loads(_get(f"{base}/api/v2/dags"))
        ids = {d["dag_id"] for d in dags["dags"]}
        assert ids == {"decisionflow_retrain", "decisionflow_evaluate"}
        details = json.loads(_get(f"{base}/api/v2/dags/decisionflow_retrain/details"))
        assert "quality alert" in details["doc_md"] and "gate_margin" in details["params"]

        SHOT.parent.mkdir(parents=True, exist_ok=True)
        SHOT.unlink(missing_ok=True)
        profile = tmp_path / "chromium-profile"
        subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--window-size=1440,900",
                "--virtual-time-budget=20000",
                f"--screenshot={SHOT}",
                f"{base}/dags",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        assert SHOT.is_file() and SHOT.stat().st_size > 20_000
        dom = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=20000",
                "--dump-dom",
                f"{base}/dags",
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
        assert "decisionflow_retrain" in dom and "decisionflow_evaluate" in dom
        _docs_and_params_on_screen(f"{base}/dags/decisionflow_retrain")
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _docs_and_params_on_screen(url: str) -> None:
    """Open the retrain DAG page: its docs and its trigger form with the Params."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(url, wait_until="networkidle")
            page.get_by_role("button", name="Dag Docs").click()
            docs = page.get_by_role("dialog")
            docs.get_by_text("promotes one only when it beats").wait_for(timeout=20_000)
            page.wait_for_timeout(1500)  # let the dialog's fade-in finish before the picture
            page.screenshot(path=str(DOCS_SHOT))
            page.keyboard.press("Escape")
            page.get_by_role("button", name="Trigger Dag").click()
            form = page.get_by_role("dialog")
            form.get_by_text("Run Parameters").wait_for(timeout=20_000)
            text = form.inner_text()
            for param in ("families", "gate_metric", "gate_margin", "dry_run", "window_days"):
                assert param in text, f"param {param} not shown in the trigger form"
            page.wait_for_timeout(1500)
            page.screenshot(path=str(PARAMS_SHOT))
        finally:
            browser.close()
    assert DOCS_SHOT.stat().st_size > 20_000 and PARAMS_SHOT.stat().st_size > 20_000
