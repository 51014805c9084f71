"""
### decisionflow: retrain (weekly, or when the evaluate DAG raises a quality alert)

Trains challengers for one decision **flow** on its labelled decisions and promotes one only
when it beats the flow's champion on the same holdout. Every name comes from the flow (`flow`
Param, or the flow named by the quality alert that started the run): its spec, registry model,
policy, drift reference, reports and work dirs; a run of one flow never touches another's.

0. **flow**: resolves the flow's names once for the run.
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
   of `policies`, default the flow's policy) and rows/s; a variant outside its parity bounds
   is stored as not servable. Never fails the run: workers fall back to the native model.
8. **promote**: passed -> `champion` alias; refused -> `challenger` alias, champion stays.
   Either way the verdict and its reasons go into the alias history.
9. **reload**: broadcast `reload_model` for the flow to the Celery workers (they also poll
   the alias).
10. **policy** (`optimise_policy`, after a promotion; beside reload and report): cost-optimal
   cut-offs for the new champion on the run's holdout (`gain_good_approved`,
   `loss_bad_approved`, `review_cost`) written as the flow's next policy version
   (`var/policies/<flow>/`); `apply_policy` also promotes it (audited).
11. **report**: `var/reports/<flow>/<day>/retrain-<run>/evaluation.html` (champion vs
   challenger on the holdout: metrics, curves, calibration, cut-offs, importance, verdict)
   with its tables as CSV/Parquet, `retrain.json` + `candidates.csv`; the index is refreshed.

`dry_run` trains, evaluates and gates but registers and promotes nothing. Bad data (validation,
spec, policy or flow errors) fails a task at once; infrastructure errors are retried.
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
from common import DEFAULT_ARGS, DEFAULT_FLOW, QUALITY_ALERT, START_DATE, fail_fast

FAMILIES = ["logreg", "hgb", "torch_mlp"]
DAG_ID = "decisionflow_retrain"


# ------------------------------------------------------------------ tasks (thin: one call each)


@task
@fail_fast
def flow(params: dict, triggering_asset_events=None) -> dict:  # type: ignore[no-untyped-def]
    import common as ds

    return ds.flow_names(ds.alerted_flow(triggering_asset_events, params["flow"])).as_dict()


@task
@fail_fast
def extract(names: dict, params: dict, dag_run=None) -> dict:  # type: ignore[no-untyped-def]
    import common as ds

    from pipelines.workdir import extract_training_data

    work = ds.run_dir(DAG_ID, names["flow"], dag_run.run_id)
    window = params["window_days"] or None
    return {
        **extract_training_data(
            ds.database_url(),
            names["spec"],
            work,
            window,
            source=params.get("bootstrap_source") or None,
            model_name=names["model"],
        ),
        "work_dir": work,
    }


@task
@fail_fast
def validate(names: dict, data: dict, params: dict) -> dict:
    from pipelines.workdir import validate_training_data

    return validate_training_data(
        data["work_dir"], names["spec"], min_rows=params["min_rows"], seed=params["seed"]
    )


@task
@fail_fast
def families(params: dict) -> list[str]:
    return list(params["families"])


@task(map_index_template="{{ family }}")
@fail_fast
def train(family: str, names: dict, data: dict, _valid: dict, params: dict) -> dict:
    from pipelines.workdir import train_candidate

    fixed = (params.get("family_params") or {}).get(family)
    return train_candidate(data["work_dir"], names["spec"], family, fixed, seed=params["seed"])


@task
@fail_fast
def evaluate(data: dict, candidates: list[dict], params: dict) -> dict:
    from pipelines.workdir import evaluate_candidates

    paths = [c["path"] for c in candidates]
    return evaluate_candidates(data["work_dir"], paths, params["gate_metric"])


@task
@fail_fast
def gate(names: dict, data: dict, _ev: dict, params: dict) -> dict:
    import common as ds

    from pipelines.workdir import gate_candidate

    return gate_candidate(
        data["work_dir"],
        ds.registry_url(),
        names["model"],
        params["gate_metric"],
        params["gate_margin"],
    )


@task
@fail_fast
def register(names: dict, data: dict, _verdict: dict, params: dict) -> dict:
    import common as ds

    from pipelines.workdir import register_candidate

    return register_candidate(
        data["work_dir"], ds.registry_url(), names["model"], params["dry_run"]
    )


@task
@fail_fast
def optimise(names: dict, data: dict, _registered: dict, params: dict) -> dict:
    import common as ds

    from pipelines.optimise import optimise_candidate

    return optimise_candidate(
        data["work_dir"],
        ds.registry_url(),
        names["model"],
        params.get("policies") or [names["policy"]],
        params["dry_run"],
    )


@task
@fail_fast
def promote(names: dict, data: dict, _registered: dict, params: dict) -> dict:
    import common as ds

    from pipelines.workdir import promote_candidate

    return promote_candidate(
        data["work_dir"], ds.registry_url(), names["model"], names["reference"], params["dry_run"]
    )


@task
@fail_fast
def policy(names: dict, data: dict, promotion: dict, params: dict, dag_run=None) -> dict:  # type: ignore[no-untyped-def]
    import common as ds

    from pipelines.policy_optimise import optimise_policy_step

    if not params["optimise_policy"]:
        return {"skipped": "optimise_policy is off"}
    if not promotion.get("promoted"):
        return {"skipped": "no new champion: the policy's cut-offs stand"}
    return optimise_policy_step(
        data["work_dir"],
        names["flow"],
        ds.registry_url(),
        gain_good_approved=params["gain_good_approved"],
        loss_bad_approved=params["loss_bad_approved"],
        review_cost=params["review_cost"],
        apply=params["apply_policy"],
        who=f"airflow {DAG_ID} {dag_run.run_id}",
    )


@task
@fail_fast
def reload(names: dict, promotion: dict) -> dict:
    from workers import broadcast_reload

    if not promotion.get("promoted"):
        return {"replies": 0, "skipped": "champion unchanged"}
    return broadcast_reload(flow=names["flow"])


@task
@fail_fast
def report(names: dict, data: dict, _reloaded: dict, ds=None, dag_run=None) -> dict:  # type: ignore[no-untyped-def]
    import common as support

    from pipelines.report import write_retrain_report

    return write_retrain_report(
        data["work_dir"],
        names["reports"],
        ds,
        dag_run.run_id,
        registry_url=support.registry_url(),
        model_name=names["model"],
    )


# ------------------------------------------------------------------ the DAG


@dag(
    dag_id=DAG_ID,
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
        "flow": Param(
            DEFAULT_FLOW,
            type="string",
            minLength=1,
            description="Decision flow (shipped name or YAML path): its spec, model, policy, "
            "reference data and reports. A quality alert names its own flow.",
        ),
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
            "empty = the flow's policy.",
        ),
        "optimise_policy": Param(
            False,
            type="boolean",
            description="After a promotion: write the flow's policy with cost-optimal cut-offs "
            "for the new champion as the next version.",
        ),
        "apply_policy": Param(
            False,
            type="boolean",
            description="Also promote that policy version (audited); off: review it, then "
            "`decisionflow policy promote`.",
        ),
        "gain_good_approved": Param(
            1.0, type="number", minimum=0, description="Value of approving a good applicant."
        ),
        "loss_bad_approved": Param(
            5.0, type="number", minimum=0, description="Loss of approving a bad applicant."
        ),
        "review_cost": Param(
            0.3, type="number", minimum=0, description="Cost of one manual review."
        ),
    },
)
def decisionflow_retrain() -> None:
    names = flow()
    data = extract(names)
    valid = validate(names, data)
    candidates = train.partial(names=names, data=data, _valid=valid).expand(family=families())
    evaluated = evaluate(data, candidates)
    verdict = gate(names, data, evaluated)
    registered = register(names, data, verdict)
    promotion = promote(names, data, optimise(names, data, registered))
    report(names, data, reload(names, promotion))
    policy(names, data, promotion)  # a leaf: its outcome never holds up reload or report


decisionflow_retrain()
