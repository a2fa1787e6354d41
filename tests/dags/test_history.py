"""History can be replayed: the DAGs start at ``schedules.start_date`` with the spec's catch-up,
and a run dated before the start date fails naming it instead of "succeeding" with no task.

(The backfill of daily partitions through monitoring under a real scheduler is in
tests/integration/test_backfill.py.)
"""

from __future__ import annotations

import datetime as dt
import re

import pytest

from mlops_ops.config import parse_pipeline_spec
from mlops_ops.dag_factory import build_pipeline_dags
from mlops_ops.runner import run_dag
from tests.conftest import ROOT, load_dag

KINDS = ("training", "monitoring", "batch_scoring", "rollback")


def _spec(start: str | None = None, catchup: bool | None = None):
    import yaml

    data = yaml.safe_load((ROOT / "pipelines" / "churn.yaml").read_text())
    if start is not None:
        data["schedules"]["start_date"] = start
    if catchup is not None:
        data["schedules"]["catchup"] = catchup
    return parse_pipeline_spec(data)


@pytest.mark.parametrize(
    ("start", "catchup", "expected"),
    [
        (None, None, dt.datetime(2024, 1, 1, tzinfo=dt.UTC)),
        ("2025-06-01", False, dt.datetime(2025, 6, 1, tzinfo=dt.UTC)),
        ("2025-06-01", True, dt.datetime(2025, 6, 1, tzinfo=dt.UTC)),
        ("2025-06-01T04:00:00+02:00", True, dt.datetime(2025, 6, 1, 2, tzinfo=dt.UTC)),
    ],
)
def test_every_dag_starts_at_the_spec_start_date_with_its_catchup(start, catchup, expected):
    dags = build_pipeline_dags(_spec(start, catchup))
    assert set(dags) == {f"churn_{k}" for k in KINDS}
    for dag_id, dag in dags.items():
        assert dag.start_date == expected, dag_id
        scheduled = dag_id != "churn_rollback"
        assert dag.catchup is (bool(catchup) and scheduled), dag_id


def test_with_catchup_the_scheduler_starts_at_the_start_date():
    """Airflow starts a timetable at the earliest start of the DAG and its tasks."""
    for dag_id, dag in build_pipeline_dags(_spec("2025-06-01", True)).items():
        if dag_id == "churn_rollback":
            continue
        assert min(t.start_date for t in dag.tasks) == dag.start_date, dag_id


def test_a_future_start_date_keeps_the_tasks_waiting_for_it():
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).date().isoformat()
    dags = build_pipeline_dags(_spec(future, False))
    for dag_id in ("churn_training", "churn_monitoring", "churn_batch_scoring"):
        dag = dags[dag_id]
        assert min(t.start_date for t in dag.tasks) == dag.start_date, dag_id


@pytest.mark.parametrize(
    ("dag_id", "first_task"),
    [
        ("churn_monitoring", "ingest_batch"),
        ("churn_training", "ingest"),
        ("churn_batch_scoring", "champion"),
        ("churn_rollback", "rollback"),
    ],
)
def test_a_run_dated_before_the_start_date_fails_naming_it(airflow_db, mlops_home, capfd, dag_id, first_task):
    pipelines = mlops_home.parent / "pipelines"
    path = pipelines / "churn.yaml"
    path.write_text(re.sub(r"\nschedules:\n", "\nschedules:\n  start_date: 2026-02-01\n", path.read_text()))
    before = dt.datetime(2026, 1, 15, tzinfo=dt.UTC)

    result = run_dag(
        load_dag(dag_id), conf={"version": "1"} if dag_id == "churn_rollback" else {}, logical_date=before
    )

    assert result.state == "failed", result.tasks
    assert result.tasks[first_task] == "failed", result.tasks
    assert all(state in ("failed", "upstream_failed", "skipped") for state in result.tasks.values()), (
        result.tasks
    )
    logged = "".join(capfd.readouterr())  # the task's log lines (structlog, to the console)
    assert (
        "this run is dated 2026-01-15T00:00:00+00:00, before the start date 2026-02-01T00:00:00+00:00"
        in logged
    )
    assert "schedules.start_date" in logged


@pytest.mark.parametrize("preset", ["@once", "@continuous"])
def test_once_and_continuous_keep_the_tasks_at_the_start_date(preset):
    """Their first run is dated at the earliest start of the DAG and its tasks."""
    import yaml

    data = yaml.safe_load((ROOT / "pipelines" / "churn.yaml").read_text())
    data["schedules"]["training"] = preset
    dag = build_pipeline_dags(parse_pipeline_spec(data))["churn_training"]
    assert min(t.start_date for t in dag.tasks) == dag.start_date


@pytest.mark.parametrize("schedule", ["@daily", "0 3 * * 1", None])
def test_cron_and_unscheduled_dags_give_runs_before_the_start_their_tasks(schedule):
    import yaml

    data = yaml.safe_load((ROOT / "pipelines" / "churn.yaml").read_text())
    data["schedules"].update(training=schedule, monitoring=schedule, scoring=schedule)
    for dag_id, dag in build_pipeline_dags(parse_pipeline_spec(data)).items():
        assert min(t.start_date for t in dag.tasks) < dag.start_date, dag_id
