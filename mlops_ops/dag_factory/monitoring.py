"""The ``<name>_monitoring`` DAG: one batch per run, checked against the serving champion."""

from __future__ import annotations

from typing import Any

from mlops_ops.config import PipelineSpec
from mlops_ops.dag_factory.common import dag_kwargs, fail_runs_before_start, ingest_task

MONITORING_DOC = """\
### {name}: monitoring

`ingest_batch -> validate_batch -> detect_drift + check_performance -> request_retrain`, and
`validate_batch -> estimate_performance + detect_attribution_drift` (reported only)

* **ingest_batch** reads `{source}` (this run's batch) into a snapshot.
* **validate_batch** runs the spec's checks and the suite inferred from the champion's training
  data. The target may be absent (unlabelled batches).
* **detect_drift** compares the batch with {reference}, column by column (binned KS /
  chi-square and missing rates, Holm-corrected, with an effect-size floor; dataset verdict by the
  rule `{rule}`), and the champion's predictions on the batch with its predictions on that reference.
* **check_performance** scores the champion on labelled rows: `{metric}` may drop at most
  {tolerance} from its value at promotion{floor}.
* **estimate_performance** estimates `{metric}` before labels arrive, from the champion's calibrated
  confidence (CBPE, docs/estimation.md): a leading indicator that never requests a retrain itself.
* **detect_attribution_drift** explains a sample of the batch with the champion (SHAP) and
  compares its mean |SHAP| profile with the one logged at training: drift when more than
  {attribution_delta} of the attribution moved (bootstrap lower bound). Reported, not a retrain trigger.
* **request_retrain** applies the retrain policy (cooldown {cooldown} h): on a trigger it emits the
  `x-mlops://{name}/retrain` asset event, which schedules `{name}_training`; otherwise it skips.

{feedback}Reports (JSON and HTML) are linked from each task and logged to MLflow (`mlops.kind` tag).
"""

FEEDBACK_DOC = """\
With `monitoring.feedback`: `ingest_outcomes -> join_outcomes -> check_performance`.

* **ingest_outcomes** reads `{source}` (the outcomes that arrived in this run) into a snapshot;
  nothing arrived: skipped.
* **join_outcomes** joins them to the predictions they answer (the prediction log and the
  batch-scoring outputs) by {how}, within {window} days of the prediction; late, duplicate,
  orphan, out-of-window and invalid rows are counted in its report (docs/outcomes.md). The joined
  outcomes (`outcomes/joined/`) give **check_performance** each version's live `{metric}`.

"""


_REFERENCES = {
    "training": "the champion's training data",
    "seasonal": "the same period one season earlier (`monitoring.drift.reference`)",
    "rolling": "the days just before it (`monitoring.drift.reference`)",
}


def build_monitoring_dag(spec: PipelineSpec, *, default_args: dict[str, Any] | None = None) -> Any:
    """The ``<name>_monitoring`` DAG, or None when the spec has no ``monitoring.source``."""
    monitoring = spec.monitoring
    if monitoring.source is None:
        return None
    from airflow.sdk import DAG

    from mlops_ops.notifiers import event_callbacks
    from mlops_ops.operators.monitor import (
        CheckModelPerformanceOperator,
        DetectDriftOperator,
        EstimatePerformanceOperator,
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
        **dag_kwargs(spec, "monitoring", default_args=default_args),
        doc_md=MONITORING_DOC.format(
            name=spec.name,
            source="the prediction log of the online service"
            if src.prediction_log
            else src.uri or f"SQL on {src.conn_id}",
            metric=spec.performance_metric,
            tolerance=perf.tolerance,
            floor=f", and not past {perf.floor}" if perf.floor is not None else "",
            cooldown=monitoring.retrain.cooldown_hours,
            reference=_REFERENCES[monitoring.drift.reference.kind],
            rule=monitoring.drift.rule,
            feedback=_feedback_doc(spec),
            attribution_delta=monitoring.attribution.delta,
        ),
    ) as dag:
        # min_rows=1: a small batch is "insufficient data", reported by the checks, not a failure;
        # no outlets: a monitoring batch is not the training dataset
        ingest = ingest_task(src, task_id="ingest_batch", pipeline=spec.name, min_rows=1, outlets=[])
        validate = ValidateDataOperator(
            task_id="validate_batch",
            snapshot=ingest.output,
            target=spec.target,
            require_target=False,
            coerce_to_reference=True,
            numeric_features=spec.features.numeric,
            categorical_features=spec.features.categorical,
            expectations=[e.model_dump() for e in spec.validation.expectations],
            inferred_severities=spec.validation.inferred.model_dump(),
            min_rows=1,
            **common,
        )
        checks: dict[str, Any] = {}
        if monitoring.drift.enabled:
            # the reference's files default to the training source's; only what was set is passed
            settings = monitoring.drift.model_copy(update={"reference": spec.drift_reference})
            drift = DetectDriftOperator(
                task_id="detect_drift",
                snapshot=ingest.output,
                drift=settings.model_dump(exclude_unset=True),
                **event_callbacks(spec, "drift"),
                **common,
            )
            validate >> drift
            checks["drift"] = drift
        join = _feedback_tasks(spec) if monitoring.feedback is not None else None
        if perf.enabled:
            outcome_args: dict[str, Any] = {}
            if monitoring.feedback is not None:
                # joined outcomes give live performance; a day without outcomes (join skipped)
                # still checks the batch, so only a failed join holds the check back
                outcome_args = {
                    "use_outcomes": True,
                    "outcome_days": monitoring.feedback.window_days,
                    "trigger_rule": "none_failed_min_one_success",
                }
            performance = CheckModelPerformanceOperator(
                task_id="check_performance",
                snapshot=ingest.output,
                target=spec.target,
                metric=spec.performance_metric,
                tolerance=perf.tolerance,
                floor=perf.floor,
                min_rows=perf.min_rows,
                **outcome_args,
                **event_callbacks(spec, "degradation"),
                **common,
            )
            validate >> performance
            if join is not None:
                join >> performance
            checks["performance"] = performance
            # before labels arrive (CBPE): reported, not fed to request_retrain (a leading indicator
            # must not retrain by itself; docs/estimation.md)
            estimate = EstimatePerformanceOperator(
                task_id="estimate_performance",
                snapshot=ingest.output,
                target=spec.target,
                metric=spec.performance_metric,
                tolerance=perf.tolerance,
                min_rows=perf.min_rows,
                **common,
            )
            validate >> estimate
        if monitoring.attribution.enabled:
            # reported only: it does not feed request_retrain (docs/explanations.md)
            from mlops_ops.operators.monitor import DetectAttributionDriftOperator

            attribution = monitoring.attribution
            validate >> DetectAttributionDriftOperator(
                task_id="detect_attribution_drift",
                snapshot=ingest.output,
                delta=attribution.delta,
                alpha=attribution.alpha,
                min_rows=attribution.min_rows,
                max_rows=attribution.max_rows,
                n_boot=attribution.n_boot,
                seed=spec.model.seed,
                **common,
            )
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
    return fail_runs_before_start(dag, spec)


def _feedback_tasks(spec: PipelineSpec) -> Any:
    """``ingest_outcomes >> join_outcomes`` for ``monitoring.feedback``; returns the join task."""
    from mlops_ops.operators.feedback import JoinOutcomesOperator

    feedback = spec.monitoring.feedback
    assert feedback is not None
    ingest = ingest_task(
        feedback.source,
        task_id="ingest_outcomes",
        pipeline=spec.name,
        min_rows=1,
        skip_when_empty=True,
        outlets=[],
    )
    entity = feedback.entity
    return JoinOutcomesOperator(
        task_id="join_outcomes",
        outcomes=ingest.output,
        label_column=feedback.label,
        prediction_id=feedback.prediction_id,
        entity_key=entity.key if entity is not None else None,
        time=feedback.event_time,
        window_days=feedback.window_days,
        lookback_days=feedback.lookback,
        task=spec.model.task,
        pipeline=spec.name,
    )


def _feedback_doc(spec: PipelineSpec) -> str:
    feedback = spec.monitoring.feedback
    if feedback is None:
        return ""
    src = feedback.source
    entity = feedback.entity
    return FEEDBACK_DOC.format(
        source=src.uri or f"SQL on {src.conn_id}",
        how=f"entity `{entity.key}` at event time `{entity.time}`"
        if entity is not None
        else f"prediction id `{feedback.prediction_id}`",
        window=feedback.window_days,
        metric=spec.performance_metric,
    )
