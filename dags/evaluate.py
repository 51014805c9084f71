"""
### decisionflow: evaluate (daily)

Measures how the deployed models do on live traffic and whether the inputs drifted.

1. **extract**: decisions of the last `window_days` joined to their outcomes, and the features
   of the events in the window, from the decision store (filled by `decisionflow sink`).
2. **quality**: accuracy, precision, recall, F1, ROC-AUC per model version and policy arm;
   approve / review / decline rates.
3. **drift**: PSI per feature between the promoted model's training data and the window.
4. **report**: the analyst reports `evaluation.html`, `operations.html`, `drift.html` (every
   table also as CSV and Parquet) plus `metrics.json` under `var/reports/<day>/`, and the
   `var/reports/index.html` of every day (same code as `decisionflow report`).
5. **quality_alert**: emits the `decisionflow://quality-alert` asset event, which starts the
   retrain DAG, when F1 of a champion falls below `f1_floor` or a feature's PSI passes
   `psi_limit` (skipped otherwise).
"""

from __future__ import annotations

import os

from airflow.sdk import Param, dag, task
from airflow.sdk.exceptions import AirflowSkipException
from common import DEFAULT_ARGS, QUALITY_ALERT, START_DATE


@dag(
    dag_id="decisionflow_evaluate",
    schedule=os.environ.get("DECISIONFLOW_EVALUATE_CRON", "30 5 * * *"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["decisionflow", "evaluation", "monitoring"],
    default_args=DEFAULT_ARGS,
    params={
        "spec": Param("credit_data", type="string", description="Feature spec name or path."),
        "window_days": Param(
            7.0, type="number", minimum=0.01, description="Days of decisions to evaluate."
        ),
        "threshold": Param(
            0.5, type="number", minimum=0, maximum=1, description="Score cut for F1 & co."
        ),
        "f1_floor": Param(
            0.5, type="number", minimum=0, maximum=1, description="Retrain below this F1."
        ),
        "psi_limit": Param(0.25, type="number", minimum=0, description="Retrain above this PSI."),
        "min_labelled": Param(
            50, type="integer", minimum=1, description="Labels needed before F1 counts."
        ),
    },
)
def decisionflow_evaluate() -> None:
    @task
    def extract(params: dict, dag_run=None) -> dict:  # type: ignore[no-untyped-def]
        import common as ds

        from analytics.monitoring import extract_window

        work = ds.run_dir("decisionflow_evaluate", dag_run.run_id)
        info = extract_window(ds.database_url(), params["spec"], params["window_days"], work)
        return {**info, "work_dir": work}

    @task
    def quality(window: dict, params: dict) -> dict:
        from analytics.monitoring import compute_quality

        return compute_quality(window["work_dir"], params["spec"], params["threshold"])

    @task
    def drift(window: dict, params: dict) -> dict:
        import common as ds

        from analytics.monitoring import compute_drift

        reference = ds.reference_path(ds.model_name(params["spec"]))
        return compute_drift(window["work_dir"], params["spec"], reference)

    @task
    def report(window: dict, _q: dict, _d: dict, params: dict, ds=None) -> dict:  # type: ignore[no-untyped-def]
        import common as support

        from analytics.monitoring import write_quality_report

        name = support.model_name(params["spec"])
        return write_quality_report(
            window["work_dir"],
            support.reports_dir(),
            ds,
            params["f1_floor"],
            params["psi_limit"],
            params["min_labelled"],
            spec_name=params["spec"],
            reference_path=support.reference_path(name),
            registry_url=support.registry_url(),
            model_name=name,
            threshold=params["threshold"],
        )

    @task(outlets=[QUALITY_ALERT])
    def quality_alert(verdict: dict) -> dict:
        if not verdict["retrain"]:
            raise AirflowSkipException("quality is within bounds: no retrain")
        return verdict

    window = extract()
    quality_alert(report(window, quality(window), drift(window)))


decisionflow_evaluate()
