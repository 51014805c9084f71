"""One layout: every default location derives from the home; each has its own override."""

from __future__ import annotations

from pathlib import Path

import pytest

from models import paths
from workers.settings import SinkSettings, WorkerSettings

_OVERRIDES = (
    "DECISIONFLOW_RUN_DIR",
    "DECISIONFLOW_REGISTRY_URL",
    "DECISIONFLOW_REFERENCE_DIR",
    "DECISIONFLOW_REPORTS_DIR",
    "DECISIONFLOW_RUNS_DIR",
    "DECISIONFLOW_DATABASE_URL",
)


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in (*_OVERRIDES, paths.HOME_ENV):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_a_checkout_keeps_everything_under_its_var_folder(bare_env: pytest.MonkeyPatch) -> None:
    root = paths.repo_root()
    assert root is not None and (root / "pyproject.toml").is_file()
    assert paths.home() == root / "var"
    assert paths.stack_dir() == root / "var" / "stack"
    assert paths.registry_url() == str(root / "var" / "registry")
    assert paths.dags_folder() == root / "dags"


def test_home_moves_every_location_and_the_settings_follow(
    bare_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bare_env.setenv(paths.HOME_ENV, str(tmp_path))
    assert paths.registry_url() == str(tmp_path / "registry")
    assert paths.reference_dir() == tmp_path / "reference"
    assert paths.reports_dir() == tmp_path / "reports"
    assert paths.runs_dir() == tmp_path / "runs"
    assert paths.airflow_home() == tmp_path / "airflow"
    assert paths.stack_dir() == tmp_path / "stack"
    assert WorkerSettings(_env_file=None).registry_url == str(tmp_path / "registry")
    url = SinkSettings(_env_file=None).database_url.get_secret_value()
    assert url == f"sqlite:///{tmp_path / 'decisionflow.db'}"


def test_a_specific_override_beats_the_home(bare_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bare_env.setenv(paths.HOME_ENV, str(tmp_path / "home"))
    bare_env.setenv("DECISIONFLOW_REPORTS_DIR", str(tmp_path / "elsewhere"))
    assert paths.reports_dir() == tmp_path / "elsewhere"
    assert paths.runs_dir() == tmp_path / "home" / "runs"


def test_a_wheel_install_uses_the_user_data_folder(
    bare_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bare_env.setattr(paths, "repo_root", lambda: None)
    bare_env.setenv("XDG_DATA_HOME", str(tmp_path))
    assert paths.home() == tmp_path / "decisionflow"
