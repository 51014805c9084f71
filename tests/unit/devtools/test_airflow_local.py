"""`make airflow`'s environment: children find `airflow` without the virtualenv on PATH, and
every component signs and checks task tokens with one secret that never shows in clear."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from devtools.airflow_local import airflow_env, main


def test_every_component_gets_the_same_secrets_from_the_home(tmp_path: Path) -> None:
    first = airflow_env(home=tmp_path / "a", base={"PATH": "/usr/bin:/bin"})
    again = airflow_env(home=tmp_path / "a", base={})
    other = airflow_env(home=tmp_path / "b", base={})
    for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"):
        assert len(first[key]) >= 64 and first[key] == again[key] != other[key]
    assert (tmp_path / "a" / ".jwt_secret").stat().st_mode & 0o077 == 0  # owner only


def test_children_find_airflow_from_a_plain_shell(tmp_path: Path) -> None:
    env = airflow_env(home=tmp_path, base={"PATH": "/usr/bin:/bin"})
    assert env["PATH"].split(":")[0] == str(Path(sys.executable).parent)


def test_print_env_names_the_secret_file_not_the_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--home", str(tmp_path), "--print-env"]) == 0
    out = capsys.readouterr().out
    secret = (tmp_path / ".jwt_secret").read_text().strip()
    assert secret not in out and f"$(cat {tmp_path}/.jwt_secret)" in out
