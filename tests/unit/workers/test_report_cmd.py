"""`decisionflow report --flow`: a flow's reports go to its own folder, read from its rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from workers.cli import cli


def test_a_flows_reports_land_in_its_folder_and_the_index_lists_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reports = tmp_path / "reports"
    monkeypatch.setenv("DECISIONFLOW_REPORTS_DIR", str(reports))
    args = ["report", "--flow", "mortgage", "--day", "2026-11-20"]
    args += ["--database-url", f"sqlite:///{tmp_path / 'store.db'}"]
    args += ["--registry-url", str(tmp_path / "registry")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert (reports / "mortgage" / "2026-11-20" / "drift.html").is_file()
    assert not (reports / "2026-11-20").exists()
    assert "mortgage/2026-11-20/drift.html" in (reports / "index.html").read_text()
