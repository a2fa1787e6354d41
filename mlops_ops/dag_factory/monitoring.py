"""The ``<name>_monitoring`` DAG: one batch per run, checked against the serving champion."""

from __future__ import annotations

from typing import Any

from mlops_ops.config import PipelineSpec
from mlops_ops.dag_factory.common import DEFAULT_ARGS, START_DATE

MONITORING_DOC = """\
### {name}: monitoring

`ingest_batch -> validate_batch -> detect_drift + check_performance -> request_retrain`

* **ingest_batch** reads `{source}` (this run's batch) into a snapshot.
* **validate_batch** runs the spec's checks and the suite inferred from the champion's training
  data. The target may be absent (unlabelled batches).
* **detect_drift** compares the batch with the champion's training data, column by column
  (binned KS / chi-square and missing rates, Holm-corrected, with an effect-size floor), and the
  champion's predictions on the batch with its predictions on its training data.
* **check_performance** scores the champion on labelled rows: `{metric}` may drop at most
  {tolerance} from its value at promotion{floor}.
* **request_retrain** applies the retrain policy (cooldown {cooldown} h): on a trigger it emits the
  `mlops://{name}/retrain` asset event, which schedules `{name}_training`; otherwise it skips.

Reports (JSON and HTML) are linked from each task and logged to MLflow (`mlops.kind` tag).
"""


def build_monitoring_dag(spec: PipelineSpec, *, default_args: dict[str, Any] | None = None) -> Any:
    """The ``<name>_monitoring`` DAG, or None when the spec has no ``monitoring.source``."""
    monitoring = spec.monitoring
    if monitoring.source is None:
        return None
    from airflow.sdk import DAG

    from mlops_ops.operators.ingest import IngestDatasetOperator
    from mlops_ops.operators.monitor import (
        CheckModelPerformanceOperator,
        DetectDriftOperator,
        RequestRetrainOperator,
    )
    from mlops_ops.operators.validate import ValidateDataOperator

    src = monitoring.source
    perf = monitoring.performance
    common: dict[str, Any] = {"pipeline": spec.name}
    with DAG(
        dag_id=f"{spec.name}_monitoring",
        description=f"Drift and performance of the {spec.name} champion; requests retraining",
        schedule=spec.schedules.monitoring,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        tags=["mlops-ops", spec.name, "monitoring", *spec.tags],
        default_args={"owner": spec.owner, **DEFAULT_ARGS, **(default_args or {})},
        doc_md=MONITORING_DOC.format(
            name=spec.name,
            source=src.uri or f"SQL on {src.conn_id}",
            metric=spec.performance_metric,
            tolerance=perf.tolerance,
            floor=f", and not past {perf.floor}" if perf.floor is not None else "",
            cooldown=monitoring.retrain.cooldown_hours,
        ),
    ) as dag:
        ingest = IngestDatasetOperator(
            task_id="ingest_batch",
            source_uri=src.uri,
            source_format=src.format,
            source_conn_id=src.conn_id_storage,
            sql=src.sql,
            conn_id=src.conn_id,
            parameters=dict(src.parameters) or None,
            min_rows=1,  # a small batch is "insufficient data", reported by the checks, not a failure
            window_days=src.window.days if src.window else None,
            window_date_format=src.window.date_format if src.window else "%Y-%m-%d",
            outlets=[],  # a monitoring batch is not the training dataset
            **common,
        )
        validate = ValidateDataOperator(
            task_id="validate_batch",
            snapshot=ingest.output,
            target=spec.target,
            require_target=False,
            numeric_features=spec.features.numeric,
            categorical_features=spec.features.categorical,
            expectations=[e.model_dump() for e in spec.validation.expectations],
            inferred_severities=spec.validation.inferred.model_dump(),
            min_rows=1,
            **common,
        )
        checks: dict[str, Any] = {}
        if monitoring.drift.enabled:
            drift = DetectDriftOperator(
                task_id="detect_drift", snapshot=ingest.output, drift=monitoring.drift.model_dump(), **common
            )
            validate >> drift
            checks["drift"] = drift
        if perf.enabled:
            performance = CheckModelPerformanceOperator(
                task_id="check_performance",
                snapshot=ingest.output,
                target=spec.target,
                metric=spec.performance_metric,
                tolerance=perf.tolerance,
                floor=perf.floor,
                min_rows=perf.min_rows,
                **common,
            )
            validate >> performance
            checks["performance"] = performance
        if checks:
            RequestRetrainOperator(
                task_id="request_retrain",
                drift=checks["drift"].output if "drift" in checks else None,
                performance=checks["performance"].output if "performance" in checks else None,
                on_drift=monitoring.retrain.on_drift,
                on_performance=monitoring.retrain.on_performance,
                cooldown_hours=monitoring.retrain.cooldown_hours,
                **common,
            )
    return dag
