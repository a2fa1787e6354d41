"""A real Airflow: scheduler, DAG processor and API server on a PostgreSQL metadata DB.

dag.test() runs tasks in the test's own process; here each task runs as Airflow runs it in
production: the LocalExecutor starts a task-SDK supervisor per task, which talks to the API
server's Execution API for XCom, connections, asset events and state.

The loop closes by itself: a manual training run promotes v1; today's batch is then replaced by
a drifted one and the monitoring DAG is triggered; its retrain request (an asset event) makes
the scheduler start an asset-triggered training run, which trains v2 with the request's reason.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest

from mlops_ops.example.churn import generate, write_training_data
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


def test_training_dag_runs_under_a_real_scheduler(postgres_db, tmp_path):
    port = _free_port()
    home, pipelines, dags = tmp_path / "home", tmp_path / "pipelines", tmp_path / "dags"
    for d in (pipelines, dags):
        d.mkdir()
    spec = (ROOT / "pipelines" / "churn.yaml").read_text()
    for kind in ("training", "monitoring", "scoring"):  # nothing on a timetable: only what the test starts
        spec = re.sub(rf"\n  {kind}: \"@\w+\"", f"\n  {kind}: null", spec)
    assert '"@' not in spec.split("schedules:")[1]
    (pipelines / "churn.yaml").write_text(spec)
    (dags / "pipelines_dag.py").write_text(DAG_FILE)
    write_training_data(home / "data" / "churn" / "daily", rows=2000, seed=0)

    env = local_executor_env(
        tmp_path, postgres_db, port=port, dags=dags, home=home, pipelines=pipelines, paused=False
    )
    airflow(env, "db", "migrate", timeout=300)

    with running_airflow(env, tmp_path, port) as (procs, logs):

        def parsed():
            return query(postgres_db, "SELECT dag_id FROM dag WHERE dag_id = 'churn_training'")

        wait("the DAG processor to parse churn_training", parsed, 180, procs, logs)
        airflow(env, "dags", "unpause", "churn_training")
        airflow(env, "dags", "trigger", "churn_training", "--conf", json.dumps({"reason": "real scheduler"}))

        def finished(dag_id, run_type):
            def check():
                rows = query(
                    postgres_db,
                    f"SELECT run_id, state FROM dag_run WHERE dag_id = '{dag_id}' "
                    f"AND run_type = '{run_type}' AND state IN ('success', 'failed')",
                )
                return {"run_id": rows[0][0], "state": rows[0][1]} if rows else None

            return check

        def states(dag_id, run_id):
            return dict(
                query(
                    postgres_db,
                    f"SELECT task_id, state FROM task_instance WHERE dag_id = '{dag_id}' AND run_id = '{run_id}'",
                )
            )

        run = wait("the DAG run to finish", finished("churn_training", "manual"), 420, procs, logs)
        task_states = states("churn_training", run["run_id"])
        assert run["state"] == "success", task_states
        assert task_states == {t: "success" for t in ("ingest", "validate", "train", "evaluate", "deploy")}

        # the world moves: today's batch is replaced by a drifted one; monitoring runs on it
        today = sorted((home / "data" / "churn" / "daily").glob("*.parquet"))[-1]
        generate(400, seed=99, drift=1.5, concept=1.0).to_parquet(today, index=False)
        airflow(env, "dags", "unpause", "churn_monitoring")
        airflow(env, "dags", "trigger", "churn_monitoring")
        mon = wait("the monitoring run", finished("churn_monitoring", "manual"), 300, procs, logs)
        mon_states = states("churn_monitoring", mon["run_id"])
        assert mon["state"] == "success", mon_states
        assert mon_states["request_retrain"] == "success", mon_states

        # ...and the scheduler starts training on the retrain asset, by itself
        retrain = wait(
            "the asset-triggered training run",
            finished("churn_training", "asset_triggered"),
            420,
            procs,
            logs,
        )
        retrain_states = states("churn_training", retrain["run_id"])
        assert retrain["state"] == "success", retrain_states
        assert retrain_states["train"] == "success", retrain_states

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    run_tags = client.get_run(client.get_model_version("churn", "1").run_id).data.tags
    assert run_tags["mlops.trigger_reason"] == "real scheduler"
    assert run_tags["airflow.dag_id"] == "churn_training"
    v2_tags = client.get_run(client.get_model_version("churn", "2").run_id).data.tags
    reason = v2_tags["mlops.trigger_reason"]
    assert reason.startswith("retrain requested by monitoring: data drift"), reason
    assert len(list((home / "storage" / "churn" / "retrain_requests").glob("*.json"))) == 1
    shutil.rmtree(tmp_path / "airflow", ignore_errors=True)
