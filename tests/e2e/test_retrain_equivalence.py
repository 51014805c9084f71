"""One retrain pipeline: `decisionflow models train --promote` and the retrain DAG
(`dag.test`) on the same data, seed and families register the same model and champion."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from models.data import load_frame
from models.registry import ModelRegistry
from models.spec import load_spec
from tests.e2e.airflow_harness import REPO, DagRunner, make_env

FAMILIES = ["logreg", "hgb"]


def test_cli_and_dag_promote_the_same_model(
    tmp_path: Path, airflow_runner: Callable[[dict[str, str]], DagRunner]
) -> None:
    spec = load_spec("credit_data")
    data = tmp_path / "applications.csv"
    load_frame(spec).sample(2000, random_state=3).to_csv(data, index=False)

    dag_env = make_env(tmp_path / "dag", f"sqlite:///{tmp_path / 'store.db'}")  # empty store
    dag_env["DECISIONFLOW_MODEL_NAME"] = "elsewhere"  # the workers' setting: never a DAG's
    airflow = airflow_runner(dag_env)  # migrates the DB while the CLI trains

    cli_registry = tmp_path / "cli-registry"
    cli_env = {
        **os.environ,
        "DECISIONFLOW_RUNS_DIR": str(tmp_path / "cli-runs"),
        "DECISIONFLOW_REFERENCE_DIR": str(tmp_path / "cli-reference"),
    }
    train = ["models", "train", "--families", ",".join(FAMILIES), "--source", str(data)]
    train += ["--registry", str(cli_registry)]
    # the CLI and the DAG train side by side: separate processes, registries and work dirs
    cli_log = tmp_path / "cli.log"
    with cli_log.open("wb") as out:
        cli = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", *train, "--promote"],
            env=cli_env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        run = airflow.run(
            "decisionflow_retrain", {"families": FAMILIES, "bootstrap_source": str(data)}
        )
        cli.wait(600)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait(10)
    assert cli.returncode == 0, cli_log.read_text()
    assert run["state"] == "success", run["log"][-4000:]

    by_cli, by_dag = (
        ModelRegistry(cli_registry),
        ModelRegistry(dag_env["DECISIONFLOW_REGISTRY_URL"]),
    )
    versions = [[v.version for v in r.list_versions(spec.name)] for r in (by_cli, by_dag)]
    assert versions == [[1], [1]]
    assert by_cli.alias_version(spec.name, "champion") == 1
    assert by_dag.alias_version(spec.name, "champion") == 1
    cli_meta, dag_meta = by_cli.metadata(spec.name, 1), by_dag.metadata(spec.name, 1)
    for key in ("family", "params", "train_fingerprint", "holdout_fingerprint", "spec_hash"):
        assert cli_meta[key] == dag_meta[key], key
    assert cli_meta["metrics"]["headline"] == dag_meta["metrics"]["headline"]
    assert by_cli.history(spec.name)[-1].verdict == by_dag.history(spec.name)[-1].verdict
