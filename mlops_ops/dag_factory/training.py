"""The ``<name>_training`` DAG."""

from __future__ import annotations

from typing import Any

from mlops_ops.config import PipelineSpec
from mlops_ops.dag_factory.common import dag_kwargs, fail_runs_before_start, ingest_task

TRAINING_DOC = """\
### {name}: training

`ingest -> validate -> train -> evaluate -> deploy`

Scheduled on `{schedule}` **or** on a retrain request from `{name}_monitoring` (the
`x-mlops://{name}/retrain` asset), whichever comes first.

* **ingest** reads `{source}`{window} into a content-addressed snapshot (re-running on the same data is a
  no-op).
* **validate** runs Great Expectations: the spec's checks plus a suite inferred from the
  champion's training data. An `error` fails the run before anything is trained.
* **train** fits `{estimator}` and registers a new version of the MLflow model `{name}`. It skips
  when a version was already trained on the same snapshot and configuration, unless *force*.
* **evaluate** scores challenger and champion on the same holdout and applies the gate
  (primary metric `{metric}`); it does not touch the registry.
* **deploy** moves the `{alias}` alias if the gate said *promote*, and skips otherwise (the
  run still succeeds: a rejected challenger is a decision, not a failure).{release}

Trigger by hand with a *reason* (recorded on the MLflow run) and *force*.
"""


def _params() -> dict[str, Any]:
    from airflow.sdk import Param

    return {
        "reason": Param(
            None,
            type=["null", "string"],  # optional: the form may be sent with the field empty
            title="Reason",
            description="Optional. Why this run: recorded as the MLflow tag mlops.trigger_reason. "
            "Empty: the run type (manual, scheduled, asset_triggered).",
        ),
        "force": Param(
            False,
            type="boolean",
            title="Force training",
            description="Train even when a model version was already trained on this exact data and configuration.",
        ),
    }


def training_schedule(spec: PipelineSpec) -> Any:
    """The training cron OR the pipeline's retrain asset (asset only, when there is no cron)."""
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable

    from mlops_ops.assets import retrain_asset

    cron = spec.schedules.training
    if cron in ("@once", "@continuous"):
        return cron  # not a cron: these cannot be combined with an asset
    if cron is None:
        return [retrain_asset(spec.name)]
    return AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(cron, timezone="UTC"), assets=[retrain_asset(spec.name)]
    )


def build_training_dag(spec: PipelineSpec, *, default_args: dict[str, Any] | None = None) -> Any:
    """The ``<name>_training`` DAG of a pipeline."""
    from airflow.sdk import DAG

    from mlops_ops.notifiers import event_callbacks
    from mlops_ops.operators import (
        DeployModelOperator,
        EvaluateModelOperator,
        TrainModelOperator,
        ValidateDataOperator,
    )

    src = spec.source
    common: dict[str, Any] = {"pipeline": spec.name}
    with DAG(
        dag_id=f"{spec.name}_training",
        description=spec.description or f"Train, gate and deploy the {spec.name} model",
        schedule=training_schedule(spec),
        params=_params(),
        **dag_kwargs(spec, "training", default_args=default_args),
        doc_md=TRAINING_DOC.format(
            name=spec.name,
            source=src.uri or f"SQL on {src.conn_id}",
            window=f" (the last {src.window.days} day(s) of partitions)" if src.window else "",
            schedule=spec.schedules.training or "no cron",
            estimator=spec.model.estimator,
            metric=spec.evaluation.primary_metric,
            alias="challenger" if spec.deployment.is_release else "champion",
            release=f" The `{spec.name}_release` DAG judges the {spec.deployment.strategy} on live traffic, "
            "then promotes or rolls it back."
            if spec.deployment.is_release
            else "",
        ),
    ) as dag:
        ingest = ingest_task(src, task_id="ingest", pipeline=spec.name, min_rows=spec.validation.min_rows)
        features: dict[str, Any] = {
            "numeric_features": spec.features.numeric,
            "categorical_features": spec.features.categorical,
        }
        validate = ValidateDataOperator(
            task_id="validate",
            snapshot=ingest.output,
            target=spec.target,
            expectations=[e.model_dump() for e in spec.validation.expectations],
            inferred_severities=spec.validation.inferred.model_dump(),
            min_rows=spec.validation.min_rows,
            **features,
            **common,
        )
        train = TrainModelOperator(
            task_id="train",
            snapshot=ingest.output,
            target=spec.target,
            estimator=spec.model.estimator,
            estimator_params=dict(spec.model.params),
            task=spec.model.task,
            holdout_fraction=spec.model.holdout_fraction,
            seed=spec.model.seed,
            max_training_rows=spec.model.max_training_rows,
            column_types=dict(spec.features.types) or None,
            id_columns=spec.training_id_columns() or None,
            force="{{ params.force }}",
            reason="{{ params.reason or dag_run.run_type }}",
            **features,
            **common,
        )
        evaluate = EvaluateModelOperator(
            task_id="evaluate",
            model=train.output,
            evaluation=spec.evaluation.model_dump(),
            **event_callbacks(spec, "rejection"),
            **common,
        )
        if spec.deployment.is_release:
            from mlops_ops.operators.deploy import ReleaseChallengerOperator

            deploy: DeployModelOperator = ReleaseChallengerOperator(
                task_id="deploy", decision=evaluate.output, strategy=spec.deployment.strategy, **common
            )
        else:
            deploy = DeployModelOperator(task_id="deploy", decision=evaluate.output, **common)
        validate >> train
        evaluate >> deploy
    return fail_runs_before_start(dag, spec)
