"""What every generated DAG shares."""

from __future__ import annotations

import datetime as dt
from typing import Any

from mlops_ops.config import DEFAULT_START_DATE

#: The start date of a spec that gives no ``schedules.start_date``.
START_DATE = DEFAULT_START_DATE

DEFAULT_ARGS: dict[str, Any] = {
    "retries": 2,
    "retry_delay": dt.timedelta(minutes=2),
    "retry_exponential_backoff": True,
}


def dag_kwargs(spec: Any, kind: str, *, default_args: dict[str, Any] | None = None) -> dict[str, Any]:
    """What every DAG of a pipeline shares: the spec's start date and catch-up, one run at a time,
    tags, owner."""
    return {
        "start_date": spec.schedules.start_date,
        "catchup": spec.schedules.catchup,
        "max_active_runs": 1,
        "tags": ["mlops-ops", spec.name, kind, *spec.tags],
        "default_args": {"owner": spec.owner, **DEFAULT_ARGS, **(default_args or {})},
    }


#: Timetables whose runs do not depend on the earliest start once it has passed (without catch-up).
_START_FREE_TIMETABLES = frozenset(
    {"NullTimetable", "CronTriggerTimetable", "AssetOrTimeSchedule", "AssetTriggeredTimetable"}
)

#: Start date of the tasks (not the DAG) when a run dated before the DAG's start must fail loudly.
_TASKS_START = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def fail_runs_before_start(dag: Any, spec: Any) -> Any:
    """Give a run dated before ``schedules.start_date`` its tasks, so that it fails naming the date.

    Airflow creates no task instance for a run dated before a task's start date: such a run
    (triggered by hand or with ``dag.test()``) "succeeds" with nothing done. With the tasks
    starting at the epoch, every run gets its tasks and the first one refuses a date before the
    DAG's start date (``MlopsBaseOperator.pre_execute``).

    Airflow's scheduler starts a DAG's timetable at the earliest start date of the DAG and its
    tasks. That changes nothing when the start date has passed and there is no catch-up (the
    next run is the latest interval either way); with ``catchup`` or a start date still to come
    the tasks keep the DAG's start date, so that the scheduler starts at ``schedules.start_date``.
    So do they with ``@once`` and ``@continuous``, whose first run is dated at the earliest start.
    """
    start = spec.schedules.start_date
    timetable = type(dag.timetable).__name__
    if timetable not in _START_FREE_TIMETABLES:  # @once and @continuous run AT the earliest start
        return dag
    if timetable != "NullTimetable" and (spec.schedules.catchup or start > dt.datetime.now(dt.UTC)):
        return dag
    for task in dag.tasks:
        task.start_date = _TASKS_START
    return dag


def ingest_task(source: Any, *, task_id: str, pipeline: str, min_rows: int, **kwargs: Any) -> Any:
    """An ingest task reading a spec's ``SourceSpec`` (files with an optional window, or SQL)."""
    from mlops_ops.operators.ingest import IngestDatasetOperator

    window = source.window
    return IngestDatasetOperator(
        task_id=task_id,
        pipeline=pipeline,
        source_uri=source.uri,
        source_format=source.format,
        source_conn_id=source.conn_id_storage,
        sql=source.sql,
        conn_id=source.conn_id,
        parameters=dict(source.parameters) or None,
        prediction_log=source.prediction_log,
        min_rows=min_rows,
        window_days=window.days if window else None,
        window_date_format=window.date_format if window else "%Y-%m-%d",
        csv_options=source.csv.reader_options() if source.csv else None,
        **kwargs,
    )
