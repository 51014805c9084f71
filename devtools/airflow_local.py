"""`make airflow`: a local Airflow (standalone) on this project's ``dags/``.

Everything lives under ``var/airflow`` (``AIRFLOW_HOME``, from :mod:`models.paths`: config,
SQLite metadata DB, logs, the generated admin password). The DAGs see the same registry,
reference data, reports and store as ``make demo`` and the CLI. The UI listens on 127.0.0.1
(``--port``, default 18080, or ``DECISIONFLOW_AIRFLOW_PORT``). Login: user ``admin``; standalone
generates the password on first start and keeps it in
``var/airflow/simple_auth_manager_passwords.json.generated`` — this command prints where, never
the secret itself. It works from a plain shell: the virtualenv's ``bin`` goes first on the
children's PATH (standalone starts its scheduler, dag-processor and api-server by name).

    python -m devtools.airflow_local            # db migrate, then airflow standalone
    python -m devtools.airflow_local --print-env  # the environment, for running airflow yourself
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from models import paths

__all__ = ["PASSWORD_FILE", "airflow_env", "dag_test", "main", "migrate"]

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
    """Migrate the metadata DB, print the UI address and login, then run standalone."""
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
    print(f"airflow: migrating the metadata DB in {home} ...", flush=True)
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
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


_RUNNER = r"""
import json, sys
sys.path.insert(0, sys.argv[1])  # as Airflow does for a bundle: the DAGs import `common`
from airflow.models import DagBag
bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
dag = bag.dags[sys.argv[2]]
run = dag.test(run_conf=json.loads(sys.argv[3]))
states = {}
for ti in run.get_task_instances():
    key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
    states[key] = str(ti.state)
print("DAGRUN=" + json.dumps({"state": str(run.state), "run_id": run.run_id, "tasks": states}))
"""


def migrate(env: dict[str, str]) -> None:
    """``airflow db migrate`` in the env's AIRFLOW_HOME."""
    airflow = _airflow_bin()
    proc = subprocess.run(
        [airflow, "db", "migrate"], env=env, capture_output=True, text=True, timeout=300
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"airflow db migrate failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )


def dag_test(env: dict[str, str], dag_id: str, conf: dict[str, Any]) -> dict[str, Any]:
    """Run ``dag.test(run_conf=conf)`` in a child; return the run state and task states."""
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _RUNNER,
            env["AIRFLOW__CORE__DAGS_FOLDER"],
            dag_id,
            json.dumps(conf),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=paths.repo_root() or Path.cwd(),
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("DAGRUN=")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"dag.test of {dag_id} failed (rc {proc.returncode}):\n"
            + proc.stdout[-6000:]
            + proc.stderr[-6000:]
        )
    result: dict[str, Any] = json.loads(lines[-1][len("DAGRUN=") :])
    result["log"] = proc.stdout[-20000:] + proc.stderr[-20000:]
    return result


if __name__ == "__main__":  # pragma: no cover - thin entry point
    raise SystemExit(main())
