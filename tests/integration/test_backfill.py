"""History replayed with Airflow's backfill: daily partitions through the monitoring DAG.

A real scheduler, DAG processor and API server on PostgreSQL (as in test_scheduler.py). A first
training run makes v1 the champion; then ``airflow backfill create`` replays monitoring over
BACKFILL_DAYS past days, each run reading its own day's partition (``{{ ds }}``), and a backfill
that reaches back before ``schedules.start_date`` fails those runs naming the start date.
BACKFILL_DAYS is 7, not a month, to keep the test's time on a shared 2-core machine reasonable.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path

import pytest

from mlops_ops.example.churn import write_partitions, write_training_data
from tests.conftest import ROOT
from tests.integration.conftest import _free_port
from tests.integration.local_airflow import (
    DAG_FILE,
    airflow,
    local_executor_env,
    query,
    running_airflow,
    wait,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BACKFILL_DAYS = 7
BEFORE_START_DAYS = 2


def test_backfill_replays_daily_partitions_through_monitoring(postgres_db, tmp_path):
    port = _free_port()
    home, pipelines, dags = tmp_path / "home", tmp_path / "pipelines", tmp_path / "dags"
    for d in (pipelines, dags):
        d.mkdir()
    today = dt.datetime.now(dt.UTC).date()
    first = today - dt.timedelta(days=30)  # the replayed days: before the training window
    start = first  # schedules.start_date
    spec = (ROOT / "pipelines" / "churn.yaml").read_text()
    spec = re.sub(r"\n  training: \"@\w+\"", "\n  training: null", spec)  # runs only when the test says
    spec = re.sub(r"\n  scoring: \"@\w+\"", "\n  scoring: null", spec)
    spec = spec.replace("\nschedules:\n", f"\nschedules:\n  start_date: {start.isoformat()}\n")
    spec = re.sub(r"cooldown_hours: \d+", "cooldown_hours: 100000", spec)  # no retrain loop here
    (pipelines / "churn.yaml").write_text(spec)
    (dags / "pipelines_dag.py").write_text(DAG_FILE)
    daily = home / "data" / "churn" / "daily"
    write_training_data(daily, rows=2000, seed=0)
    write_partitions(
        daily,
        start=first - dt.timedelta(days=BEFORE_START_DAYS),
        days=BACKFILL_DAYS + BEFORE_START_DAYS,
        rows_per_day=400,
        seed=5,
    )

    env = local_executor_env(  # paused at creation: only the backfill runs monitoring
        tmp_path, postgres_db, port=port, dags=dags, home=home, pipelines=pipelines, paused=True
    )
    airflow(env, "db", "migrate", timeout=300)

    def runs(dag_id: str, run_type: str) -> list[tuple[str, str, object]]:
        return query(
            postgres_db,
            f"SELECT run_id, state, logical_date FROM dag_run WHERE dag_id = '{dag_id}' "
            f"AND run_type = '{run_type}' ORDER BY logical_date",
        )

    def states(dag_id: str, run_id: str) -> dict[str, str]:
        return dict(
            query(
                postgres_db,
                f"SELECT task_id, state FROM task_instance WHERE dag_id = '{dag_id}' AND run_id = '{run_id}'",
            )
        )

    with running_airflow(env, tmp_path, port) as (procs, logs):
        wait(
            "the DAG processor to parse churn_monitoring",
            lambda: query(postgres_db, "SELECT dag_id FROM dag WHERE dag_id = 'churn_monitoring'"),
            180,
            procs,
            logs,
        )
        # the champion the replayed batches are checked against
        airflow(env, "dags", "unpause", "churn_training")
        airflow(env, "dags", "trigger", "churn_training", "--conf", json.dumps({"reason": "backfill test"}))

        def trained():
            rows = [r for r in runs("churn_training", "manual") if r[1] in ("success", "failed")]
            return rows[0] if rows else None

        training = wait("the training run", trained, 420, procs, logs)
        assert training[1] == "success", states("churn_training", training[0])

        airflow(env, "dags", "unpause", "churn_monitoring")
        airflow(
            env,
            "backfill",
            "create",
            "--dag-id",
            "churn_monitoring",
            "--from-date",
            (first - dt.timedelta(days=BEFORE_START_DAYS)).isoformat(),
            "--to-date",
            (first + dt.timedelta(days=BACKFILL_DAYS - 1)).isoformat(),
            "--max-active-runs",
            "1",
        )

        def replayed():
            rows = runs("churn_monitoring", "backfill")
            done = [r for r in rows if r[1] in ("success", "failed")]
            return rows if rows and len(done) == len(rows) else None

        rows = wait(
            "the backfill's runs", replayed, 60 * (BACKFILL_DAYS + BEFORE_START_DAYS) * 2, procs, logs
        )

    by_day = {r[2].date(): (r[0], r[1]) for r in rows}
    replayed_days = [first + dt.timedelta(days=i) for i in range(BACKFILL_DAYS)]
    for day in replayed_days:
        run_id, state = by_day[day]
        assert state == "success", (day, states("churn_monitoring", run_id))
        assert states("churn_monitoring", run_id)["detect_drift"] in ("success", "skipped")
    # each run read its own day's partition into a snapshot
    sources = {
        json.loads(p.read_text())["source"]["uri"]
        for p in (home / "storage" / "churn" / "snapshots").glob("*/manifest.json")
    }
    for day in replayed_days:
        assert str(daily / f"{day.isoformat()}.parquet") in sources, day

    # days before schedules.start_date: the backfill ran their tasks, which refused the date
    early = sorted(d for d in by_day if d < start)
    assert early == [start - dt.timedelta(days=i) for i in range(BEFORE_START_DAYS, 0, -1)]
    for day in early:
        run_id, state = by_day[day]
        assert state == "failed", day
        assert states("churn_monitoring", run_id)["ingest_batch"] == "failed"
    task_logs = "\n".join(
        p.read_text(errors="replace")
        for p in (tmp_path / "airflow" / "logs").rglob("*")
        if p.is_file() and "ingest_batch" in str(p)
    )
    for day in early:
        assert (
            f"this run is dated {day.isoformat()}T00:00:00+00:00, before the start date "
            f"{start.isoformat()}T00:00:00+00:00"
        ) in task_logs
    shutil.rmtree(tmp_path / "airflow", ignore_errors=True)
    assert Path(home).exists()
