"""`make airflow`'s environment: children find `airflow` without the virtualenv on PATH, and
every component signs and checks task tokens with one secret that never shows in clear. The
``dag.test()`` runner keeps one child for many runs and reports a failed or dead child."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from devtools import airflow_local
from devtools.airflow_local import DagRunner, airflow_env, main


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


# a stand-in for the Airflow child: the same protocol (READY, then one reply per request),
# no Airflow; "die" exits mid-run, "fail" answers like a run that raised
_FAKE_SERVER = r"""
import json, os, sys
replies = os.fdopen(int(sys.argv[2]), "w", buffering=1)
print("starting with", sys.argv[3], flush=True)
replies.write("READY\n")
for line in sys.stdin:
    cmd = json.loads(line)
    print("running", cmd["dag_id"], flush=True)
    if cmd["dag_id"] == "die":
        sys.exit(3)
    if cmd["dag_id"] == "fail":
        replies.write("FAILED=" + json.dumps("KeyError('fail')") + "\n")
        continue
    result = {"state": "success", "run_id": cmd["dag_id"], "tasks": cmd["conf"]}
    replies.write("DAGRUN=" + json.dumps(result) + "\n")
"""


def _runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DagRunner:
    monkeypatch.setattr(airflow_local, "_SERVER", _FAKE_SERVER)
    env = airflow_env(home=tmp_path / "home", base={"PATH": "/usr/bin:/bin"})
    return DagRunner(env)


def test_one_child_runs_each_dag_asked_for_and_keeps_each_runs_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _runner(tmp_path, monkeypatch) as runner:
        first = runner.run("a", {"t": "success"})
        second = runner.run("b", {})
        pid = runner.proc.pid
        assert runner.proc.poll() is None
    assert (first["state"], first["run_id"], first["tasks"]) == ("success", "a", {"t": "success"})
    assert "running a" in first["log"] and "running b" not in first["log"]
    assert "running b" in second["log"] and "running a" not in second["log"]
    assert runner.proc.returncode == 0 and runner.proc.pid == pid  # ended by close()
    assert "starting with migrate" in runner.log_path.read_text()


def test_a_failed_or_dead_child_raises_with_its_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _runner(tmp_path, monkeypatch) as runner:
        with pytest.raises(RuntimeError, match=r"dag.test of fail failed .*KeyError"):
            runner.run("fail", {})
        with pytest.raises(RuntimeError, match=r"(?s)exited \(rc 3\).*running die"):
            runner.run("die", {})
