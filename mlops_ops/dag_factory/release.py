"""The ``<name>_release`` DAG: judge the challenger on live traffic, promote or roll it back, watch."""

from __future__ import annotations

from typing import Any

from mlops_ops.config import PipelineSpec
from mlops_ops.dag_factory.common import dag_kwargs, fail_runs_before_start

RELEASE_DOC = """\
### {name}: release ({strategy})

`judge -> {approve}conclude`, and `watch` beside them. Runs on `{schedule}` and whenever the
model asset `x-mlops://{name}/model` is updated; a run with nothing to do skips in a second.

* **judge** waits until the challenger has been under release for {minutes} min and each arm
  has answered {min_requests} requests, then tests it against the champion on the prediction log:
  error rate, p95 latency ratio, prediction drift and, where rows carry labels, `{metric}`. It
  writes a JSON and HTML report.
{approval_line}* **conclude** promotes the challenger (`champion` := challenger, by compare-and-set) or rolls
  it back (the `challenger` alias is deleted; the champion never changes), recording why in the
  release ledger.
* **watch**: for {watch} min after a promotion, the new champion is rolled back to the previous
  one if a guardrail breaches.

Trigger by hand with *action* `rollback` and a *reason* to end a release now. See docs/releases.md.
"""


def _params() -> dict[str, Any]:
    from airflow.sdk import Param

    return {
        "action": Param(
            "judge",
            enum=["judge", "rollback"],
            title="Action",
            description="judge: wait for the bake, then judge (default). rollback: withdraw the challenger now.",
        ),
        "reason": Param(
            "", type="string", title="Reason", description="Why (recorded in the release ledger)."
        ),
    }


def release_schedule(spec: PipelineSpec) -> Any:
    """The release cron OR the pipeline's model asset (asset only, when there is no cron)."""
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable

    from mlops_ops.assets import model_asset

    cron = spec.schedules.release
    if cron is None:
        return [model_asset(spec.name)]
    if cron.startswith("@"):
        return cron
    return AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(cron, timezone="UTC"), assets=[model_asset(spec.name)]
    )


def look_minutes(cron: str | None) -> int:
    """Minutes between two runs of the release cron (for the watch's level per look); 15 if unknown."""
    if not cron or cron.startswith("@"):
        return {"@hourly": 60, "@daily": 1440}.get(cron or "", 15)
    import datetime as dt

    from croniter import croniter

    it = croniter(cron, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    first, second = it.get_next(dt.datetime), it.get_next(dt.datetime)
    return max(1, int((second - first).total_seconds() // 60))


def build_release_dag(spec: PipelineSpec, *, default_args: dict[str, Any] | None = None) -> Any:
    """The ``<name>_release`` DAG, or None with ``deployment.strategy: direct``."""
    deployment = spec.deployment
    if not deployment.is_release:
        return None
    from airflow.sdk import DAG

    from mlops_ops.operators.release import (
        ConcludeReleaseOperator,
        JudgeReleaseOperator,
        WatchChampionOperator,
    )

    common: dict[str, Any] = {"pipeline": spec.name}
    settings = deployment.model_dump()
    judged: dict[str, Any] = {
        "deployment": settings,
        "metric": spec.evaluation.primary_metric,
        "model_task": _model_task(spec),
    }
    approval_id = "approve" if deployment.approval else None
    with DAG(
        dag_id=f"{spec.name}_release",
        description=f"Judge the {spec.name} challenger on live traffic; promote or roll back",
        schedule=release_schedule(spec),
        params=_params(),
        **dag_kwargs(spec, "release", default_args=default_args),
        doc_md=RELEASE_DOC.format(
            name=spec.name,
            strategy=deployment.strategy,
            approve="approve -> " if approval_id else "",
            schedule=spec.schedules.release or "no cron",
            minutes=deployment.bake.minutes,
            min_requests=deployment.bake.min_requests,
            metric=spec.evaluation.primary_metric,
            approval_line="* **approve** asks a human before a promotion (Airflow's Required Actions).\n"
            if approval_id
            else "",
            watch=deployment.watch.minutes,
        ),
    ) as dag:
        judge = JudgeReleaseOperator(
            task_id="judge",
            action="{{ params.action }}",
            reason="{{ params.reason }}",
            approval_task_id=approval_id,
            **judged,
            **common,
        )
        conclude = ConcludeReleaseOperator(
            task_id="conclude",
            judgement=judge.output,
            approval_task_id=approval_id,
            trigger_rule="none_failed_min_one_success",
            **common,
        )
        if approval_id:
            from airflow.providers.standard.operators.empty import EmptyOperator
            from airflow.providers.standard.operators.hitl import ApprovalOperator

            approve = ApprovalOperator(
                task_id=approval_id,
                subject=f"Promote the {spec.name} challenger?",
                body="The release judge found no guardrail breached: "
                "{{ ti.xcom_pull(task_ids='judge')['reasons'] | join('; ') }}. "
                "Report: {{ ti.xcom_pull(task_ids='judge')['report_uri'] }}",
            )
            approved = EmptyOperator(task_id="approved")
            judge >> approve >> approved >> conclude
        WatchChampionOperator(
            task_id="watch", look_minutes=look_minutes(spec.schedules.release), **judged, **common
        )
    return fail_runs_before_start(dag, spec)


def _model_task(spec: PipelineSpec) -> str:
    return "regression" if spec.model.task == "regression" else "classification"
