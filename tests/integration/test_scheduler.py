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
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from mlops_ops.example.churn import generate, write_training_data
from tests.conftest import ROOT
from tests.integration.conftest import _free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAG_FILE = (
    "# airflow DAG file: the DAG factory over $MLOPS_PIPELINES, retries off\n"
    "import os\n"
    "from mlops_ops.dag_factory import build_dags\n"
    "globals().update(build_dags(os.environ['MLOPS_PIPELINES'], default_args={'retries': 0}))\n"
)


def _airflow(env, *args, timeout=180):
    out = subprocess.run(
        [sys.executable, "-m", "airflow", *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert out.returncode == 0, (
        f"airflow {' '.join(args)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    )
    return out.stdout


def _query(dsn, sql):
    import psycopg2

    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        try:
            cur.execute(sql)
        except psycopg2.Error:  # tables not there yet
            return []
        return cur.fetchall()


def _wait(what, predicate, timeout, procs, logs):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        dead = [name for name, p in procs.items() if p.poll() is not None]
        if dead:
            break
        time.sleep(2)
    tails = "\n".join(f"--- {p.name} ---\n{p.read_text()[-3000:]}" for p in logs)
    pytest.fail(f"timed out waiting for {what} (exited: {dead if 'dead' in locals() else []})\n{tails}")


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

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS_", "MLFLOW_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(tmp_path / "airflow"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres_db.replace(
                "postgresql://", "postgresql+psycopg2://"
            ),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API_AUTH__JWT_SECRET": "integration-test-secret-0123456789abcdef",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            # a loaded machine: the API server may take longer than the default 5 s to answer a
            # task's supervisor, which would then kill the task (as in test_backfill.py)
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
            "AIRFLOW__WORKERS__EXECUTION_API_RETRIES": "10",
            "MLOPS_HOME": str(home),
            "MLOPS_PIPELINES": str(pipelines),
            "GX_ANALYTICS_ENABLED": "False",
        }
    )
    _airflow(env, "db", "migrate", timeout=300)

    procs, logs = {}, []
    try:
        for name, args in (
            ("api-server", ["api-server", "--port", str(port), "--workers", "1"]),
            ("dag-processor", ["dag-processor"]),
            ("scheduler", ["scheduler"]),
        ):
            log = tmp_path / f"{name}.log"
            logs.append(log)
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", "airflow", *args],
                env=env,
                stdout=log.open("w"),
                stderr=subprocess.STDOUT,
            )

        def parsed():
            return _query(postgres_db, "SELECT dag_id FROM dag WHERE dag_id = 'churn_training'")

        _wait("the DAG processor to parse churn_training", parsed, 180, procs, logs)
        _airflow(env, "dags", "unpause", "churn_training")
        _airflow(env, "dags", "trigger", "churn_training", "--conf", json.dumps({"reason": "real scheduler"}))

        def finished(dag_id, run_type):
            def check():
                rows = _query(
                    postgres_db,
                    f"SELECT run_id, state FROM dag_run WHERE dag_id = '{dag_id}' "
                    f"AND run_type = '{run_type}' AND state IN ('success', 'failed')",
                )
                return {"run_id": rows[0][0], "state": rows[0][1]} if rows else None

            return check

        def states(dag_id, run_id):
            return dict(
                _query(
                    postgres_db,
                    f"SELECT task_id, state FROM task_instance WHERE dag_id = '{dag_id}' AND run_id = '{run_id}'",
                )
            )

        run = _wait("the DAG run to finish", finished("churn_training", "manual"), 420, procs, logs)
        task_states = states("churn_training", run["run_id"])
        assert run["state"] == "success", task_states
        assert task_states == {t: "success" for t in ("ingest", "validate", "train", "evaluate", "deploy")}

        # the world moves: today's batch is replaced by a drifted one; monitoring runs on it
        today = sorted((home / "data" / "churn" / "daily").glob("*.parquet"))[-1]
        generate(400, seed=99, drift=1.5, concept=1.0).to_parquet(today, index=False)
        _airflow(env, "dags", "unpause", "churn_monitoring")
        _airflow(env, "dags", "trigger", "churn_monitoring")
        mon = _wait("the monitoring run", finished("churn_monitoring", "manual"), 300, procs, logs)
        mon_states = states("churn_monitoring", mon["run_id"])
        assert mon["state"] == "success", mon_states
        assert mon_states["request_retrain"] == "success", mon_states

        # ...and the scheduler starts training on the retrain asset, by itself
        retrain = _wait(
            "the asset-triggered training run",
            finished("churn_training", "asset_triggered"),
            420,
            procs,
            logs,
        )
        retrain_states = states("churn_training", retrain["run_id"])
        assert retrain["state"] == "success", retrain_states
        assert retrain_states["train"] == "success", retrain_states
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()

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
