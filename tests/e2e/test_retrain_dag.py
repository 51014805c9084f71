"""dag.test() of the retrain DAG on the credit data: a champion is registered and promoted;
then a deliberately worse configuration is refused by the gate and the champion stays."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from models.registry import ModelRegistry
from tests.e2e.airflow_harness import DagRunner, make_env

SUCCESS = "success"


def test_retrain_promotes_then_gate_refuses_a_worse_candidate(
    tmp_path: Path, airflow_runner: Callable[[dict[str, str]], DagRunner]
) -> None:
    env = make_env(tmp_path, f"sqlite:///{tmp_path / 'store.db'}")  # empty store: bootstrap
    airflow = airflow_runner(env)  # migrates the DB; both runs in this one Airflow child
    registry = ModelRegistry(env["DECISIONFLOW_REGISTRY_URL"])

    t0 = time.perf_counter()
    first = airflow.run("decisionflow_retrain", {"families": ["logreg", "hgb"]})
    first_s = time.perf_counter() - t0
    assert first["state"] == SUCCESS, first["log"][-4000:]
    assert set(first["tasks"].values()) == {SUCCESS}
    assert {"train[0]", "train[1]"} <= set(first["tasks"])  # one task per family
    assert registry.alias_version("credit_data", "champion") == 1
    promoted = registry.history("credit_data")[-1]
    assert (promoted.alias, promoted.to_version, promoted.action) == ("champion", 1, "promote")
    assert promoted.verdict == {"promote": True, "reasons": ["no champion"]}
    meta = registry.metadata("credit_data", 1)
    assert meta["family"] in {"logreg", "hgb"} and meta["metrics"]["headline"]["roc_auc"] > 0.8
    assert Path(env["DECISIONFLOW_REFERENCE_DIR"], "credit_data.parquet").is_file()

    # a crippled logistic regression cannot beat the champion on the same holdout
    t0 = time.perf_counter()
    worse = airflow.run(
        "decisionflow_retrain",
        {"families": ["logreg"], "family_params": {"logreg": {"C": 1e-5}}},
    )
    worse_s = time.perf_counter() - t0
    assert worse["state"] == SUCCESS, worse["log"][-4000:]
    assert registry.alias_version("credit_data", "champion") == 1, "the champion must stay"
    assert registry.alias_version("credit_data", "challenger") == 2  # registered for the audit
    refused = registry.history("credit_data")[-1]
    assert refused.alias == "challenger" and refused.to_version == 2
    assert refused.verdict is not None and refused.verdict["promote"] is False
    assert "does not beat champion" in refused.reason
    assert any("roc_auc" in r for r in refused.verdict["reasons"])

    reports = sorted(
        Path(env["DECISIONFLOW_REPORTS_DIR"]).glob("credit_data/*/retrain-*/retrain.json")
    )
    assert len(reports) == 2
    docs = [json.loads(p.read_text()) for p in reports]
    assert sorted(d["promotion"]["promoted"] for d in docs) == [False, True]
    assert all(d["evaluation"]["holdout_fingerprint"] for d in docs)
    print(f"\nretrain dag.test: first {first_s:.1f}s, worse {worse_s:.1f}s")
