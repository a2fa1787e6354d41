"""The ``<name>_rollback`` DAG: manual only, one task, a parameter form."""

from __future__ import annotations

from typing import Any

from mlops_ops.config import PipelineSpec
from mlops_ops.dag_factory.common import DEFAULT_ARGS, fail_runs_before_start

ROLLBACK_DOC = """\
### {name}: rollback

Puts an earlier version of the MLflow model `{name}` back behind the `champion` alias, and
writes a `rollback` record to the deployment ledger. Trigger it by hand; it never runs on a
schedule.

* **version**: `previous` (default) undoes the latest promotion: the version it replaced serves
  again. Running it again changes nothing and succeeds. Or give a version number, e.g. `3`.
* **force**: also serve a version that never passed the gate, or take over an alias that was
  moved by hand outside mlops-ops (the ledger then records what was found). Use with care.
* **reason**: why; recorded in the ledger record.

Refused (the run fails, the champion is unchanged): a version that does not exist, a version that
never passed a gate (unless *force*), a model with no deployment ledger, or a champion that another
promotion is changing at this moment.
"""


def _params() -> dict[str, Any]:
    from airflow.sdk import Param

    return {
        "version": Param(
            "previous",
            type="string",
            title="Version",
            description="'previous' (undo the latest promotion) or a registered version number.",
            pattern=r"^\s*([Pp][Rr][Ee][Vv][Ii][Oo][Uu][Ss]|[vV]?[0-9]+)\s*$",
        ),
        "force": Param(
            False,
            type="boolean",
            title="Force",
            description="Also serve a version that never passed the gate, or take over an alias moved by hand.",
        ),
        "reason": Param(
            None,
            type=["null", "string"],  # optional: the form may be sent with the field empty
            title="Reason",
            description="Optional. Why this rollback: recorded in the deployment ledger.",
        ),
    }


def build_rollback_dag(spec: PipelineSpec, *, default_args: dict[str, Any] | None = None) -> Any:
    """The ``<name>_rollback`` DAG of a pipeline (``schedule=None``: triggered by hand)."""
    from airflow.sdk import DAG

    from mlops_ops.notifiers import event_callbacks
    from mlops_ops.operators.rollback import RollbackModelOperator

    with DAG(
        dag_id=f"{spec.name}_rollback",
        description=f"Roll the {spec.name} champion back to an earlier version",
        schedule=None,
        start_date=spec.schedules.start_date,
        catchup=False,
        max_active_runs=1,
        tags=["mlops-ops", spec.name, "rollback", *spec.tags],
        params=_params(),
        default_args={"owner": spec.owner, **DEFAULT_ARGS, **(default_args or {})},
        doc_md=ROLLBACK_DOC.format(name=spec.name),
    ) as dag:
        RollbackModelOperator(
            task_id="rollback",
            **event_callbacks(spec, "rollback"),
            pipeline=spec.name,
            version="{{ params.version }}",
            force="{{ params.force }}",
            reason="{{ params.reason or '' }}",
        )
    return fail_runs_before_start(dag, spec)
