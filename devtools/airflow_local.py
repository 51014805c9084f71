"""`make airflow`: a local Airflow (standalone) on this project's ``dags/``.

Everything lives under ``var/airflow`` (``AIRFLOW_HOME``, from :mod:`models.paths`: config,
SQLite metadata DB, logs, the generated admin password). The DAGs see the same registry,
reference data, reports and store as ``make demo`` and the CLI. The UI listens on 127.0.0.1
(``--port``, default 18080, or ``DECISIONFLOW_AIRFLOW_PORT``). Login: user ``admin``; standalone
generates the password on first start and keeps it in
``var/airflow/simple_auth_manager_passwords.json.generated`` — this command prints where, never
the secret itself. It works from a plain shell: the virtualenv's ``bin`` goes first on the
children's PATH (standalone starts its scheduler, dag-processor and api-server by name).

    python -m devtools.airflow_local            # airflow standalone (it migrates the DB first)
    python -m devtools.airflow_local --print-env  # the environment, for running airflow yourself
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from models import paths

__all__ = ["PASSWORD_FILE", "DagRunner", "airflow_env", "main"]

PASSWORD_FILE = "simple_auth_manager_passwords.json.generated"
DEFAULT_PORT = 18080


def airflow_env(
    home: Path | None = None,
    port: int = DEFAULT_PORT,
    dags_folder: Path | None = None,
    base: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment that points Airflow at this project (home, DAGs, DB, UI address)."""
    home = home or paths.airflow_home()
    env = dict(os.environ if base is None else base)
    url = f"http://127.0.0.1:{port}"
    # every component must sign and check task tokens with the same keys: left to Airflow,
    # each process may generate its own (seen: tasks failing "Invalid auth token")
    env["AIRFLOW__API_AUTH__JWT_SECRET"] = _home_secret(home, "jwt_secret")
    env["AIRFLOW__API__SECRET_KEY"] = _home_secret(home, "api_secret_key")
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder or paths.dags_folder()),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": env.get("AIRFLOW__CORE__EXECUTOR", "LocalExecutor"),
            "AIRFLOW__CORE__PARALLELISM": env.get("AIRFLOW__CORE__PARALLELISM", "2"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            # `airflow standalone` starts its children by looking `airflow` up on PATH
            "PATH": os.pathsep.join(
                p for p in (str(Path(sys.executable).parent), env.get("PATH", "")) if p
            ),
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(paths.repo_root() or ""), env.get("PYTHONPATH", "")) if p
            ),
        }
    )
    return env


def _home_secret(home: Path, name: str) -> str:
    """A random secret kept in ``<home>/.<name>`` (0600), made on first use."""
    path = home / f".{name}"
    if not path.is_file():
        home.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(64))
    return path.read_text().strip()


def _airflow_bin() -> str:
    local = Path(sys.executable).with_name("airflow")
    return str(local) if local.exists() else (shutil.which("airflow") or "airflow")


def main(argv: list[str] | None = None) -> int:
    """Print the UI address and login, then run standalone (which migrates the metadata DB)."""
    parser = argparse.ArgumentParser(prog="python -m devtools.airflow_local", description=__doc__)
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("DECISIONFLOW_AIRFLOW_PORT", DEFAULT_PORT))
    )
    parser.add_argument("--home", type=Path, default=None, help="AIRFLOW_HOME (var/airflow)")
    parser.add_argument("--print-env", action="store_true", help="print the env and exit")
    args = parser.parse_args(argv)
    env = airflow_env(args.home, args.port)
    home = Path(env["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    if args.print_env:
        hidden = {
            "AIRFLOW__API_AUTH__JWT_SECRET": "jwt_secret",
            "AIRFLOW__API__SECRET_KEY": "api_secret_key",
        }
        for key in sorted(k for k in env if k.startswith("AIRFLOW") or k == "PYTHONPATH"):
            value = f'"$(cat {home}/.{hidden[key]})"' if key in hidden else env[key]
            print(f"export {key}={value}")  # secrets as a file reference, never in clear
        return 0
    airflow = _airflow_bin()
    # no `airflow db migrate` first: standalone creates or upgrades the metadata DB itself
    # (``initdb``) before it starts its components, and another Airflow process only costs time
    print(
        "\n"
        f"  Airflow UI:  {env['AIRFLOW__API__BASE_URL']}/\n"
        f"  DAGs:        {env['AIRFLOW__CORE__DAGS_FOLDER']}\n"
        f"  login:       user 'admin'; password in {home / PASSWORD_FILE}\n"
        "               (generated by Airflow on first start; "
        f"`python -c \"import json;print(json.load(open('{home / PASSWORD_FILE}'))['admin'])\"`)\n"
        "  stop:        Ctrl-C\n",
        flush=True,
    )
    try:
        return subprocess.call([airflow, "standalone"], env=env)
    except KeyboardInterrupt:
        return 0


_SERVER = r"""
import json, os, sys, traceback
dags, replies = sys.argv[1], os.fdopen(int(sys.argv[2]), "w", buffering=1)

def reply(line):  # after the output so far: the caller reads it with the reply
    sys.stdout.flush()
    sys.stderr.flush()
    replies.write(line + "\n")

sys.path.insert(0, dags)  # as Airflow does for a bundle: the DAGs import `common`
if sys.argv[3] == "migrate":  # what `airflow db migrate` runs, in this process
    from airflow.cli import cli_parser
    from airflow.configuration import write_default_airflow_configuration_if_needed
    write_default_airflow_configuration_if_needed()
    args = cli_parser.get_parser().parse_args(["db", "migrate"])
    args.func(args)
from airflow.models import DagBag

def dag_test(dag_id, conf):
    bag = DagBag(dag_folder=dags)  # parsed afresh for every run
    assert not bag.import_errors, bag.import_errors
    run = bag.dags[dag_id].test(run_conf=conf)
    states = {}
    for ti in run.get_task_instances():
        key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
        states[key] = str(ti.state)
    return {"state": str(run.state), "run_id": run.run_id, "tasks": states}

errors = DagBag(dag_folder=dags).import_errors
assert not errors, errors  # a broken DAG fails the start, with what broke it
reply("READY")
for line in sys.stdin:
    cmd = json.loads(line)
    try:
        result = dag_test(cmd["dag_id"], cmd["conf"])
    except Exception as exc:
        traceback.print_exc()
        reply("FAILED=" + json.dumps(repr(exc)))
    else:
        reply("DAGRUN=" + json.dumps(result))
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)  # stdin closed: every run is committed; skip the slow interpreter teardown
"""

DAG_TEST_LOG = "dag-test.log"


class DagRunner:
    """Runs ``dag.test()`` in one child process with ``env``, as many times as asked.

    Airflow reads its configuration once per process, so the runs happen in a child with the
    given environment; the caller never imports Airflow. The child starts at once and, with
    ``migrate``, first does what ``airflow db migrate`` does, then parses the DAGs; meanwhile
    the caller can get on with other work. Airflow and the task code are imported once for all
    the runs. Every run parses the DAG files afresh and runs ``dag.test()``. The
    child's output is appended to ``<AIRFLOW_HOME>/dag-test.log``; each result's ``log`` holds
    the part of it its run wrote. Use it as a context manager (or call :meth:`close`).
    """

    def __init__(self, env: dict[str, str], *, migrate: bool = True) -> None:
        home = Path(env["AIRFLOW_HOME"])
        home.mkdir(parents=True, exist_ok=True)
        self.log_path = home / DAG_TEST_LOG
        self._ready = False
        self._start = self.log_path.stat().st_size if self.log_path.exists() else 0
        read_fd, write_fd = os.pipe()
        try:
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-c",
                        _SERVER,
                        env["AIRFLOW__CORE__DAGS_FOLDER"],
                        str(write_fd),
                        "migrate" if migrate else "-",
                    ],
                    env=env,
                    stdin=subprocess.PIPE,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    pass_fds=(write_fd,),
                    cwd=paths.repo_root() or Path.cwd(),
                )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        self._replies = read_fd
        self._pending = b""

    def __enter__(self) -> DagRunner:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _log_since(self, offset: int) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def _reply(self, timeout: float, offset: int, what: str) -> str:
        """The child's next reply line; raise with its output if it dies or times out."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._pending:
            left = deadline - time.monotonic()
            readable = select.select([self._replies], [], [], max(left, 0))[0] if left > 0 else []
            chunk = os.read(self._replies, 65536) if readable else b""
            if not chunk:
                if readable or self.proc.poll() is not None:
                    problem = f"the Airflow child exited (rc {self.proc.wait()})"
                else:
                    problem = f"no result in {timeout:.0f}s"
                    self.proc.kill()
                self.close()
                raise RuntimeError(f"{what}: {problem}:\n{self._log_since(offset)[-12000:]}")
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line.decode()

    def wait_ready(self, timeout: float = 300) -> None:
        """Wait until the child has migrated (when asked) and parsed the DAGs."""
        if not self._ready:
            if self._reply(timeout, self._start, "airflow start") != "READY":
                raise RuntimeError(f"airflow start: unexpected reply; see {self.log_path}")
            self._ready = True

    def run(self, dag_id: str, conf: dict[str, Any], timeout: float = 600) -> dict[str, Any]:
        """``dag.test(run_conf=conf)`` of ``dag_id``; returns the run state and task states
        (``tasks``: task id, ``id[i]`` for a mapped one -> state) and this run's ``log``."""
        self.wait_ready()
        offset = self.log_path.stat().st_size
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"dag_id": dag_id, "conf": conf}).encode() + b"\n")
        self.proc.stdin.flush()
        reply = self._reply(timeout, offset, f"dag.test of {dag_id}")
        log = self._log_since(offset)
        if not reply.startswith("DAGRUN="):
            raise RuntimeError(f"dag.test of {dag_id} failed ({reply}):\n{log[-12000:]}")
        result: dict[str, Any] = json.loads(reply[len("DAGRUN=") :])
        result["log"] = log[-40000:]
        return result

    def close(self) -> None:
        """End the child (it finishes the run in hand first when there is one)."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        if self._replies >= 0:
            os.close(self._replies)
            self._replies = -1


if __name__ == "__main__":  # pragma: no cover - thin entry point
    raise SystemExit(main())
