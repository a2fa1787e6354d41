"""Run a DAG once, in process, with ``dag.test()``, and read back what each task did.

Used by ``mlops-ops demo`` and by the end-to-end tests. Needs a migrated Airflow metadata DB
(``airflow db migrate``) and the DAG's file inside the configured DAGs folder, because
``dag.test()`` serialises the DAG from its bundle.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any


@dataclass
class DagRunResult:
    dag_id: str
    run_id: str
    state: str
    tasks: dict[str, str] = field(default_factory=dict)
    returned: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "state": self.state,
            "tasks": self.tasks,
            "returned": self.returned,
        }


def run_dag(dag: Any, *, conf: dict[str, Any] | None = None, logical_date: Any = None) -> DagRunResult:
    """``dag.test(run_conf=conf)``, then the final state of every task and its return value."""
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    kwargs = {"logical_date": logical_date} if logical_date is not None else {}
    started = dt.datetime.now(dt.UTC)
    dr = dag.test(run_conf=conf or {}, **kwargs)
    result = DagRunResult(
        dag_id=dag.dag_id, run_id=dr.run_id, state=str(getattr(dr.state, "value", dr.state))
    )
    with create_session() as session:
        # dag.test() records a run dated in the past as started at its logical date: the UI then
        # shows months of duration. Record when it really started.
        run = session.get(DagRun, dr.id)
        if run is not None and run.start_date is not None and run.start_date < started:
            run.start_date = started
        for ti in dr.get_task_instances(session=session):
            result.tasks[ti.task_id] = str(getattr(ti.state, "value", ti.state))
        rows = session.scalars(XComModel.get_many(run_id=dr.run_id, dag_ids=dag.dag_id, key="return_value"))
        row: Any
        for row in rows:
            result.returned[row.task_id] = XComModel.deserialize_value(row)
    return result
