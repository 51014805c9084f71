"""
### decisionflow: evaluate (daily)

Measures how one decision **flow**'s deployed models do on live traffic and whether the inputs
drifted. Every name comes from the `flow` Param: its spec, registry model, drift reference
and reports.

0. **flow**: resolves the flow's names once for the run.
1. **extract**: decisions of the last `window_days` joined to their outcomes, and the features
   of the events in the window, from the decision store (filled by `decisionflow sink`).
2. **quality**: accuracy, precision, recall, F1, ROC-AUC per model version and policy arm;
   approve / review / decline rates.
3. **drift**: PSI per feature between the flow's promoted model's training data and the window.
4. **report**: the analyst reports `evaluation.html`, `operations.html`, `drift.html` (every
   table also as CSV and Parquet) plus `metrics.json` under `var/reports/<flow>/<day>/`, and
   the flow's `index.html` of every day (same code as `decisionflow report`).
5. **quality_alert**: emits the `decisionflow://quality-alert` asset event (naming the flow,
   whose retrain it starts) when F1 of a champion falls below `f1_floor` or a feature's PSI
   passes `psi_limit` (skipped otherwise).

Bad data (spec, policy or flow errors) fails a task at once; infrastructure errors are retried.
"""

from __future__ import annotations

import os

from airflow.sdk import Param, dag, task
from airflow.sdk.exceptions import AirflowSkipException
from common import DEFAULT_ARGS, DEFAULT_FLOW, QUALITY_ALERT, START_DATE, fail_fast

DAG_ID = "decisionflow_evaluate"


@dag(
    dag_id=DAG_ID,
    schedule=os.environ.get("DECISIONFLOW_EVALUATE_CRON", "30 5 * * *"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["decisionflow", "evaluation", "monitoring"],
    default_args=DEFAULT_ARGS,
    params={
        "flow": Param(
            DEFAULT_FLOW,
            type="string",
            minLength=1,
            description="Decision flow (shipped name or YAML path): its spec, model, "
            "reference data and reports.",
        ),
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
    @fail_fast
    def flow(params: dict) -> dict:
        import common as ds

        return ds.flow_names(params["flow"]).as_dict()

    @task
    @fail_fast
    def extract(names: dict, params: dict, dag_run=None) -> dict:  # type: ignore[no-untyped-def]
        import common as ds

        from analytics.monitoring import extract_window

        work = ds.run_dir(DAG_ID, names["flow"], dag_run.run_id)
        info = extract_window(
            ds.database_url(),
            names["spec"],
            params["window_days"],
            work,
            model_name=names["model"],
        )
        return {**info, "work_dir": work}

    @task
    @fail_fast
    def quality(names: dict, window: dict, params: dict) -> dict:
        from analytics.monitoring import compute_quality

        return compute_quality(window["work_dir"], names["spec"], params["threshold"])

    @task
    @fail_fast
    def drift(names: dict, window: dict) -> dict:
        from analytics.monitoring import compute_drift

        return compute_drift(window["work_dir"], names["spec"], names["reference"])

    @task
    @fail_fast
    def report(names: dict, window: dict, _q: dict, _d: dict, params: dict, ds=None) -> dict:  # type: ignore[no-untyped-def]
        import common as support

        from analytics.monitoring import write_quality_report

        return write_quality_report(
            window["work_dir"],
            names["reports"],
            ds,
            params["f1_floor"],
            params["psi_limit"],
            params["min_labelled"],
            spec_name=names["spec"],
            reference_path=names["reference"],
            registry_url=support.registry_url(),
            model_name=names["model"],
            threshold=params["threshold"],
        )

    @task(outlets=[QUALITY_ALERT])
    @fail_fast
    def quality_alert(names: dict, verdict: dict, outlet_events=None) -> dict:  # type: ignore[no-untyped-def]
        if not verdict["retrain"]:
            raise AirflowSkipException("quality is within bounds: no retrain")
        # the retrain DAG reads the flow from the event: it retrains this flow, no other
        outlet_events[QUALITY_ALERT].extra = {"flow": names["flow"]}
        return {**verdict, "flow": names["flow"]}

    names = flow()
    window = extract(names)
    quality_alert(names, report(names, window, quality(names, window), drift(names, window)))


decisionflow_evaluate()
