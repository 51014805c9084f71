"""
### decisionflow: retrain (weekly, or when the evaluate DAG raises a quality alert)

Trains challengers on the labelled decisions in the store and promotes one only when it beats
the champion on the same holdout.

1. **extract**: outcomes joined to the features that were decided on (last `window_days`;
   all when 0). An empty store bootstraps from the spec's packaged dataset.
2. **validate**: schema, nulls, label balance, minimum rows (fails with the list of
   problems); then one seeded stratified split into train + holdout.
3. **train**: one task per model family in `families`, in parallel (`family_params` pins
   parameters, else each family is tuned on an inner split of the training part).
4. **evaluate**: every candidate on the one common holdout; the best by `gate_metric` wins.
5. **gate**: the champion is scored on the same holdout; the challenger must beat it by more
   than `gate_margin` without regressing the guard metrics.
6. **register**: the candidate becomes the next registry version (refused ones too, for audit).
7. **optimise**: runtime variants of that version (ONNX, int8; fp16/bf16 on a GPU host), each
   with its parity on the holdout (score deltas, ROC-AUC, decision agreement at the cut-offs
   of `policies`) and rows/s; a variant outside its parity bounds is stored as not servable.
   Never fails the run: workers fall back to the native model.
8. **promote**: passed -> `champion` alias; refused -> `challenger` alias, champion stays.
   Either way the verdict and its reasons go into the alias history.
9. **reload**: broadcast `reload_model` to the Celery workers (they also poll the alias).
10. **report**: `var/reports/<day>/retrain-<run>/evaluation.html` (champion vs challenger on
   the holdout: metrics, curves, calibration, cut-offs, importance, verdict) with its tables
   as CSV/Parquet, `retrain.json` + `candidates.csv`; the reports index is refreshed.

`dry_run` trains, evaluates and gates but registers and promotes nothing.
"""

from __future__ import annotations

import os

from airflow.sdk import (
    AssetOrTimeSchedule,
    CronTriggerTimetable,
    Param,
    dag,
    task,
)
from common import DEFAULT_ARGS, QUALITY_ALERT, START_DATE

FAMILIES = ["logreg", "hgb", "torch_mlp"]


# ------------------------------------------------------------------ tasks (thin: one call each)


@task
def extract(params: dict, dag_run=None) -> dict:  # type: ignore[no-untyped-def]
    import common as ds

    from pipelines.workdir import extract_training_data

    work = ds.run_dir("decisionflow_retrain", dag_run.run_id)
    window = params["window_days"] or None
    return {
        **extract_training_data(
            ds.database_url(),
            params["spec"],
            work,
            window,
            source=params.get("bootstrap_source") or None,
        ),
        "work_dir": work,
    }


@task
def validate(data: dict, params: dict) -> dict:
    from pipelines.workdir import validate_training_data

    return validate_training_data(
        data["work_dir"], params["spec"], min_rows=params["min_rows"], seed=params["seed"]
    )


@task
def families(params: dict) -> list[str]:
    return list(params["families"])


@task(map_index_template="{{ family }}")
def train(family: str, data: dict, _valid: dict, params: dict) -> dict:
    from pipelines.workdir import train_candidate

    fixed = (params.get("family_params") or {}).get(family)
    return train_candidate(data["work_dir"], params["spec"], family, fixed, seed=params["seed"])


@task
def evaluate(data: dict, candidates: list[dict], params: dict) -> dict:
    from pipelines.workdir import evaluate_candidates

    paths = [c["path"] for c in candidates]
    return evaluate_candidates(data["work_dir"], paths, params["gate_metric"])


@task
def gate(data: dict, _ev: dict, params: dict) -> dict:
    import common as ds

    from pipelines.workdir import gate_candidate

    return gate_candidate(
        data["work_dir"],
        ds.registry_url(),
        ds.model_name(params["spec"]),
        params["gate_metric"],
        params["gate_margin"],
    )


@task
def register(data: dict, _verdict: dict, params: dict) -> dict:
    import common as ds

    from pipelines.workdir import register_candidate

    return register_candidate(
        data["work_dir"], ds.registry_url(), ds.model_name(params["spec"]), params["dry_run"]
    )


@task
def optimise(data: dict, _registered: dict, params: dict) -> dict:
    import common as ds

    from pipelines.optimise import optimise_candidate

    return optimise_candidate(
        data["work_dir"],
        ds.registry_url(),
        ds.model_name(params["spec"]),
        params.get("policies") or (),
        params["dry_run"],
    )


@task
def promote(data: dict, _registered: dict, params: dict) -> dict:
    import common as ds

    from pipelines.workdir import promote_candidate

    name = ds.model_name(params["spec"])
    return promote_candidate(
        data["work_dir"], ds.registry_url(), name, ds.reference_path(name), params["dry_run"]
    )


@task
def reload(promotion: dict) -> dict:
    from workers import broadcast_reload

    if not promotion.get("promoted"):
        return {"replies": 0, "skipped": "champion unchanged"}
    return broadcast_reload()


@task
def report(data: dict, _reloaded: dict, params: dict, ds=None, dag_run=None) -> dict:  # type: ignore[no-untyped-def]
    import common as support

    from pipelines.report import write_retrain_report

    return write_retrain_report(
        data["work_dir"],
        support.reports_dir(),
        ds,
        dag_run.run_id,
        registry_url=support.registry_url(),
        model_name=support.model_name(params["spec"]),
    )


# ------------------------------------------------------------------ the DAG


@dag(
    dag_id="decisionflow_retrain",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(
            os.environ.get("DECISIONFLOW_RETRAIN_CRON", "0 3 * * 1"), timezone="UTC"
        ),
        assets=[QUALITY_ALERT],
    ),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["decisionflow", "training", "models"],
    default_args=DEFAULT_ARGS,
    params={
        "spec": Param("credit_data", type="string", description="Feature spec name or path."),
        "families": Param(
            ["logreg", "hgb"],
            type="array",
            items={"type": "string", "enum": FAMILIES},
            minItems=1,
            description=f"Model families to train as candidates ({', '.join(FAMILIES)}).",
        ),
        "family_params": Param(
            {},
            type="object",
            description='Fixed params per family, e.g. {"logreg": {"C": 0.1}}; '
            "families not listed are tuned.",
        ),
        "window_days": Param(
            0, type="number", minimum=0, description="Days of labelled data to use; 0 = all."
        ),
        "bootstrap_source": Param(
            None,
            type=["null", "string"],
            description="CSV/Parquet to train on while the store has no labels; "
            "empty = the spec's packaged dataset.",
        ),
        "min_rows": Param(500, type="integer", minimum=10, description="Rows needed to train."),
        "gate_metric": Param(
            "roc_auc",
            type="string",
            enum=["roc_auc", "pr_auc", "f1", "accuracy", "log_loss", "brier"],
            description="Metric the challenger must improve.",
        ),
        "gate_margin": Param(
            0.0, type="number", description="Improvement needed over the champion."
        ),
        "seed": Param(0, type="integer", description="Seed of the split and the training."),
        "dry_run": Param(False, type="boolean", description="Gate only: register nothing."),
        "policies": Param(
            [],
            type="array",
            items={"type": "string"},
            description="Decision policies whose cut-offs the runtime variants must agree at; "
            "empty = every shipped policy.",
        ),
    },
)
def decisionflow_retrain() -> None:
    data = extract()
    valid = validate(data)
    candidates = train.partial(data=data, _valid=valid).expand(family=families())
    evaluated = evaluate(data, candidates)
    verdict = gate(data, evaluated)
    promotion = promote(data, optimise(data, register(data, verdict)))
    report(data, reload(promotion))


decisionflow_retrain()
