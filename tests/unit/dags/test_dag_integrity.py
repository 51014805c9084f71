"""Every DAG imports cleanly and follows the house rules (tags, docs, retries, no catchup)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from airflow.models import DagBag

DAGS = Path(__file__).resolve().parents[3] / "dags"
EXPECTED = {"decisionflow_retrain", "decisionflow_evaluate"}


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(DAGS))


def test_every_dag_imports_without_errors(dagbag: DagBag) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == EXPECTED


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_dag_rules(dagbag: DagBag, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    assert dag is not None
    assert dag.tags and "decisionflow" in dag.tags
    assert dag.doc_md and len(dag.doc_md) > 200
    assert dag.catchup is False
    assert dag.params, "UI-triggered runs need params"
    for t in dag.tasks:
        assert t.retries >= 1, f"{dag_id}.{t.task_id} has no retries"


def test_retrain_shape_and_params(dagbag: DagBag) -> None:
    dag = dagbag.dags["decisionflow_retrain"]
    assert set(dag.params) >= {
        "flow",
        "families",
        "window_days",
        "gate_metric",
        "gate_margin",
        "dry_run",
        "optimise_policy",
    }
    assert dag.params["families"] == ["logreg", "hgb"]
    ids = set(dag.task_ids)
    assert ids >= {
        "flow",
        "extract",
        "validate",
        "train",
        "evaluate",
        "gate",
        "register",
        "promote",
        "policy",
        "reload",
        "report",
    }
    # one train task per family (mapped), all feeding the one evaluation
    assert dag.get_task("train").downstream_task_ids == {"evaluate"}
    # weekly by default, and the evaluate DAG's quality alert also starts it
    timetable = repr(dag.timetable)
    assert "0 3 * * 1" in timetable and "decisionflow://quality-alert" in timetable


def test_evaluate_emits_the_quality_alert(dagbag: DagBag) -> None:
    dag = dagbag.dags["decisionflow_evaluate"]
    outlets = dag.get_task("quality_alert").outlets
    assert [a.uri for a in outlets] == ["decisionflow://quality-alert/"]
    assert set(dag.params) >= {"flow", "f1_floor", "psi_limit", "window_days"}


def test_parsing_imports_nothing_heavy() -> None:
    """DAG files load fast: no torch/sklearn/pandas/kafka/our packages at parse time."""
    code = (
        "import sys, runpy\n"
        f"sys.path.insert(0, '{DAGS}')\n"
        f"for f in ['{DAGS / 'retrain.py'}', '{DAGS / 'evaluate.py'}']:\n"
        "    runpy.run_path(f)\n"
        "heavy = [m for m in ('torch', 'sklearn', 'pandas', 'kafka', 'celery',\n"
        "         'models', 'decisioning', 'workers') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("HEAVY=")]
    assert line == ["HEAVY="]


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_the_trigger_form_accepts_every_default(dagbag: DagBag, dag_id: str) -> None:
    """The UI sends an empty field as null: a param whose default is empty must allow null,
    or the trigger form marks the defaults invalid and disables the Trigger button."""
    dag = dagbag.dags[dag_id]
    dag.params.validate()  # every default passes its own schema
    for name, param in dag.params.items():
        if param.value in ("", None):
            types = param.schema.get("type")
            allowed = types if isinstance(types, list) else [types]
            assert "null" in allowed, f"{dag_id}.{name}: empty default but null not allowed"


def test_the_model_name_comes_from_the_flow_never_from_an_ambient_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A churn flow trained while DECISIONFLOW_MODEL_NAME said credit_data must not become
    credit_data's champion (nor overwrite its drift reference)."""
    import common

    churn = tmp_path / "churn.yaml"
    churn.write_text("name: churn\nspec: credit_data\npolicy: credit_v1\n")
    monkeypatch.setenv("DECISIONFLOW_MODEL_NAME", "credit_data")
    names = common.flow_names(str(churn))
    assert (names.flow, names.model, names.spec) == ("churn", "churn", "credit_data")
    assert names.reference.endswith("churn.parquet")
    assert common.flow_names("credit_data").model == "credit_data"
