"""The DAGs run one decision flow, every name derived from it; bad data fails a task at once,
infrastructure errors keep their retries."""

from __future__ import annotations

import io
import os
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import common
import pytest
from airflow.models import DagBag
from airflow.sdk.exceptions import AirflowFailException
from pydantic import BaseModel, ValidationError

from decisioning.flow import FlowError
from decisioning.policy import PolicyError
from models.data import DataError
from models.spec import SpecError
from pipelines.retrain import DataValidationError

DAGS = Path(__file__).resolve().parents[3] / "dags"
DAG_IDS = ("decisionflow_evaluate", "decisionflow_retrain")


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(DAGS))


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in (
        "DECISIONFLOW_REFERENCE_DIR",
        "DECISIONFLOW_REPORTS_DIR",
        "DECISIONFLOW_RUNS_DIR",
        "DECISIONFLOW_POLICIES_DIR",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DECISIONFLOW_HOME", str(tmp_path))
    return tmp_path


# ------------------------------------------------------------------ params


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_both_dags_take_a_flow_and_no_spec(dagbag: DagBag, dag_id: str) -> None:
    params = dagbag.dags[dag_id].params
    assert params["flow"] == "credit_data"
    assert "spec" not in params  # the spec comes from the flow, never on its own


def test_retrain_optimises_the_policy_only_when_asked(dagbag: DagBag) -> None:
    params = dagbag.dags["decisionflow_retrain"].params
    assert params["optimise_policy"] is False and params["apply_policy"] is False
    assert (params["gain_good_approved"], params["loss_bad_approved"]) == (1.0, 5.0)
    assert params["review_cost"] == 0.3
    dag = dagbag.dags["decisionflow_retrain"]
    # after the promotion; a leaf, so its outcome never holds up reload or report
    assert dag.get_task("policy").upstream_task_ids >= {"promote"}
    assert dag.get_task("policy").downstream_task_ids == set()
    assert "policy" not in dag.get_task("report").get_flat_relative_ids(upstream=True)


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_every_task_starts_from_the_resolved_flow(dagbag: DagBag, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    assert dag.get_task("flow").upstream_task_ids == set()
    reachable = dag.get_task("flow").get_flat_relative_ids(upstream=False)
    assert reachable >= set(dag.task_ids) - {"flow", "families"}


# ------------------------------------------------------------------ names from the flow


def test_the_shipped_flows_share_no_name(home: Path) -> None:
    """A run for one flow cannot touch another flow's champion, reference, reports, policy
    files or work dirs: no name of the one is a name of the other."""
    credit, mortgage = common.flow_names("credit_data"), common.flow_names("mortgage")
    assert (credit.model, mortgage.model) == ("credit_data", "mortgage")
    assert (credit.spec, mortgage.spec) == ("credit_data", "hmda")
    assert (credit.policy, mortgage.policy) == ("credit_v1", "mortgage_v1")
    for field in fields(common.FlowNames):
        a, b = getattr(credit, field.name), getattr(mortgage, field.name)
        assert a != b, field.name
        if os.sep in a:  # places: neither lies inside the other
            assert not b.startswith(a + os.sep) and not a.startswith(b + os.sep), field.name
            assert a.startswith(str(home)) and b.startswith(str(home))
    assert credit.reports.endswith("/reports/credit_data")
    for dag_id in DAG_IDS:
        runs = {common.run_dir(dag_id, f, "manual__2026-01-01T00:00:00+00:00") for f in
                ("credit_data", "mortgage")}  # fmt: skip
        assert len(runs) == 2 and all(Path(r).is_dir() for r in runs)


def test_a_flow_file_names_its_own_model(home: Path, tmp_path: Path) -> None:
    flow = tmp_path / "cards.yaml"
    flow.write_text("name: cards\nspec: credit_data\npolicy: credit_v1\nmodel: cards_risk\n")
    names = common.flow_names(str(flow))
    assert (names.flow, names.model, names.spec) == ("cards", "cards_risk", "credit_data")
    assert names.reference.endswith("cards_risk.parquet") and names.reports.endswith("/cards")


def test_a_quality_alert_names_the_flow_to_retrain() -> None:
    def events(*flows: str | None) -> dict[Any, list[SimpleNamespace]]:
        extras = [{"flow": f} if f else {} for f in flows]
        return {common.QUALITY_ALERT: [SimpleNamespace(extra=e) for e in extras]}

    assert common.alerted_flow(None, "credit_data") == "credit_data"  # manual or scheduled
    assert common.alerted_flow({}, "credit_data") == "credit_data"
    assert common.alerted_flow(events(None), "credit_data") == "credit_data"  # older events
    assert common.alerted_flow(events("mortgage", "mortgage"), "credit_data") == "mortgage"
    with pytest.raises(ValueError, match="several flows"):
        common.alerted_flow(events("mortgage", "credit_data"), "credit_data")


def test_the_evaluate_alert_carries_its_flow(dagbag: DagBag) -> None:
    task = dagbag.dags["decisionflow_evaluate"].get_task("quality_alert")
    outlet = SimpleNamespace(extra={})
    verdict = {"retrain": True, "reasons": ["f1 0.3 < 0.5"]}
    out = task.python_callable(  # type: ignore[attr-defined]
        {"flow": "mortgage"}, verdict, outlet_events={common.QUALITY_ALERT: outlet}
    )
    assert outlet.extra == {"flow": "mortgage"} and out["flow"] == "mortgage"


def test_the_policy_task_runs_only_after_a_promotion_when_asked(dagbag: DagBag) -> None:
    task = dagbag.dags["decisionflow_retrain"].get_task("policy")
    call = task.python_callable  # type: ignore[attr-defined]
    names, data = {"flow": "credit_data"}, {"work_dir": "/nonexistent"}
    off = call(names, data, {"promoted": True}, {"optimise_policy": False})
    assert "off" in off["skipped"]
    kept = call(names, data, {"promoted": False}, {"optimise_policy": True})
    assert "no new champion" in kept["skipped"]


# ------------------------------------------------------------------ fail fast


class _Model(BaseModel):
    n: int


def _validation_error() -> ValidationError:
    try:
        _Model.model_validate({"n": "x"})
    except ValidationError as exc:
        return exc
    raise AssertionError("no error")


@pytest.mark.parametrize(
    "exc",
    [
        DataError("label column 'Status' has 3 missing value(s)"),
        DataValidationError("training data failed validation:\n- only 3 labelled rows"),
        SpecError("invalid spec"),
        PolicyError("bands must end at 1.0"),
        FlowError("unknown flow 'nope'"),
        ValueError("scores must be finite and within [0, 1]"),
        _validation_error(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_data_error_fails_the_task_without_retries(exc: Exception) -> None:
    @common.fail_fast
    def body() -> None:
        raise exc

    assert common.is_data_error(exc)
    with pytest.raises(AirflowFailException) as caught:
        body()
    assert str(caught.value) == str(exc)  # the message is kept...
    assert caught.value.__cause__ is exc  # ...and the original chained


@pytest.mark.parametrize(
    "exc",
    [
        OSError("disk full"),
        ConnectionRefusedError("broker down"),
        FileNotFoundError("holdout.parquet"),
        io.UnsupportedOperation("not seekable"),  # an OSError that is also a ValueError
        RuntimeError("registry unavailable"),
        KeyError("champion"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_an_infrastructure_error_passes_through_for_a_retry(exc: Exception) -> None:
    @common.fail_fast
    def body() -> None:
        raise exc

    assert not common.is_data_error(exc)
    with pytest.raises(type(exc)) as caught:
        body()
    assert caught.value is exc


def test_fail_fast_keeps_results_and_signatures() -> None:
    @common.fail_fast
    def body(names: dict[str, str], params: dict[str, Any], dag_run: Any = None) -> str:
        return names["flow"] + params["x"]

    assert body({"flow": "a"}, {"x": "b"}) == "ab"
    import inspect

    assert list(inspect.signature(body).parameters) == ["names", "params", "dag_run"]


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_every_task_fails_fast(dagbag: DagBag, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    for t in dag.tasks:
        assert getattr(t.python_callable, "__fail_fast__", False), t.task_id  # type: ignore[attr-defined]
        assert t.retries == 2, t.task_id  # retries stay for everything else


def test_an_unknown_flow_fails_the_run_at_once(dagbag: DagBag, home: Path) -> None:
    task = dagbag.dags["decisionflow_retrain"].get_task("flow")
    with pytest.raises(AirflowFailException, match="unknown flow 'nope'") as caught:
        task.python_callable({"flow": "nope"})  # type: ignore[attr-defined]
    assert isinstance(caught.value.__cause__, FlowError)
