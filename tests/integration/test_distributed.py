"""The production topology, run: two Celery workers that share no disk, S3 storage, an MLflow server.

No Docker engine runs here, so the services of ``docker-compose.yaml`` run as plain processes,
launched from the same description (``mlops_ops/topology.py``): Airflow's API server, DAG
processor, scheduler and triggerer; two Celery workers, each with its own home (its own copy of
the repository's dags/ and the deployed pipeline spec, as its image would have) and a host name
of its own; PostgreSQL as the metadata DB, the Celery result backend and MLflow's backend store; Redis as the
broker; ``mlflow server`` proxying artifacts it keeps on S3; storage and source data on a local
S3-compatible server (moto's server mode: AWS S3 cannot be reached from here).

The loop: a manual training run promotes v1; a drifted batch lands; monitoring requests a
retrain; the scheduler starts the asset-triggered training run; the gate decides. The test then
checks that tasks ran on both workers, that no path of any process's home reached XCom, MLflow
or storage, and that every decision equals the embedded run's (``dag.test()`` on the same data).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from mlops_ops import topology
from mlops_ops.example.churn import generate, write_training_data
from tests.conftest import ROOT, service_missing
from tests.integration.conftest import PG, S3_CREDENTIALS, _admin, _free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

log = logging.getLogger(__name__)

REDIS = (
    os.environ.get("MLOPS_TEST_REDISHOST", "127.0.0.1"),
    int(os.environ.get("MLOPS_TEST_REDISPORT", "6379")),
)
# Redis database of this test's broker; the queue name is unique per test as well, so no other
# test (or a second run of this one) can take its tasks.
REDIS_DB = 9
WORKERS = ("worker-a", "worker-b")

# Each task process asks `[core] hostname_callable` for the host name it records on its task
# instance. Two workers on one machine share a host name; in containers each has its own. This
# module, on the PYTHONPATH of one worker only, gives each its own.
IDENTITY = "def hostname():\n    return {name!r}\n"


@pytest.fixture
def redis_server() -> None:
    """Redis on 127.0.0.1:6379 (the machine's own; MLOPS_TEST_REDISHOST/PORT), or a skip (a failure under CI)."""
    try:
        with socket.create_connection(REDIS, timeout=3) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(16)
    except OSError as err:
        service_missing(f"Redis is not reachable at {REDIS[0]}:{REDIS[1]}: {err}")
    else:
        if not reply.startswith(b"+PONG"):
            service_missing(f"the server at {REDIS[0]}:{REDIS[1]} is not Redis (answered {reply!r})")


@pytest.fixture
def mlflow_db():
    """A second fresh database, for MLflow's backend store (Airflow's is ``postgres_db``)."""
    name = f"mlops_it_mlflow_{uuid.uuid4().hex[:10]}"
    admin = _admin()
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _query(dsn, sql, params=()):
    import psycopg2

    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        try:
            cur.execute(sql, params)
        except psycopg2.Error:  # tables not there yet
            return []
        return cur.fetchall()


class Cluster:
    """The processes of the topology, their logs, and waiting on them with their logs at hand."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.logs[name] = self.tmp_path / f"{name}.log"
        self.procs[name] = subprocess.Popen(
            argv, env=env, stdout=self.logs[name].open("w"), stderr=subprocess.STDOUT
        )

    def tails(self, n: int = 3000) -> str:
        return "\n".join(f"--- {name} ---\n{path.read_text()[-n:]}" for name, path in self.logs.items())

    def wait(self, what, predicate, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            dead = [name for name, p in self.procs.items() if p.poll() is not None]
            if dead:
                pytest.fail(f"{dead} exited while waiting for {what}\n{self.tails()}")
            time.sleep(1)
        pytest.fail(f"timed out after {timeout} s waiting for {what}\n{self.tails()}")

    def stop(self) -> None:
        for p in self.procs.values():
            p.terminate()
        for p in self.procs.values():
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=30)


def _home(root: Path, spec: str) -> topology.Layout:
    """A process group's own files, as its image would hold them: the repository's DAG files (the
    factory over the specs, with its production retries), the pipeline spec, scratch space."""
    for sub in ("pipelines", "mlops", "airflow"):
        (root / sub).mkdir(parents=True)
    shutil.copytree(ROOT / "dags", root / "dags", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "pipelines" / "churn.yaml").write_text(spec)
    return topology.Layout(
        dags_folder=str(root / "dags"), pipelines=str(root / "pipelines"), mlops_home=str(root / "mlops")
    )


def _deployed_spec() -> str:
    """deploy/pipelines/churn.yaml with nothing on a timetable: only what the test starts runs."""
    spec = (ROOT / "deploy" / "pipelines" / "churn.yaml").read_text()
    for kind in ("training", "monitoring", "scoring"):
        spec = re.sub(rf"\n  {kind}: \"@\w+\"", f"\n  {kind}: null", spec)
    assert '"@' not in spec.split("schedules:")[1]
    return spec


def _decisions(tasks: dict[str, str], returned: dict[str, object]) -> dict[str, object]:
    """What a run decided, without what differs between any two runs (ids, times, URIs)."""
    keep = {
        "ingest": ("sha256", "rows"),
        "validate": ("status",),
        "train": ("version", "metrics", "snapshot_sha256"),
        "evaluate": ("promote", "status", "challenger_version", "baseline_version", "reasons", "metrics"),
        "deploy": ("version", "previous_version", "outcome"),
        "ingest_batch": ("sha256", "rows"),
        "validate_batch": ("status",),
        "detect_drift": ("status", "drifted", "drifted_columns", "prediction_status", "champion_version"),
        "check_performance": ("status", "degraded"),
        "request_retrain": ("retrain",),
    }
    out: dict[str, object] = {"states": tasks}
    for task, keys in keep.items():
        value = returned.get(task)
        if isinstance(value, dict):
            out[task] = {k: value.get(k) for k in keys}
    return json.loads(json.dumps(out, sort_keys=True, default=str))


def _embedded_loop(today: Path, drifted) -> list[dict[str, object]]:
    """The same loop with dag.test(), in this process, on the embedded defaults (local disk)."""
    from mlops_ops.runner import run_dag
    from tests.conftest import load_dag

    first = run_dag(load_dag("churn_training"), conf={"reason": "manual"})
    drifted.to_parquet(today, index=False)
    monitoring = run_dag(load_dag("churn_monitoring"))
    retrain = run_dag(load_dag("churn_training"), conf={"reason": "retrain requested by monitoring"})
    return [_decisions(r.tasks, r.returned) for r in (first, monitoring, retrain)]


def test_the_loop_runs_on_two_workers_that_share_no_disk(
    redis_server, postgres_db, mlflow_db, s3_bucket, airflow_db, mlflow_store, tmp_path
):
    import boto3

    started = time.monotonic()
    endpoint, bucket = s3_bucket
    s3 = boto3.client("s3", endpoint_url=endpoint, **S3_CREDENTIALS)

    # -- the data, and the embedded run on it ----------------------------------------------------
    data_dir = mlflow_store / "data" / "churn" / "daily"
    partitions = write_training_data(data_dir, rows=2000, seed=0)
    today = partitions[-1]
    original_today = today.read_bytes()
    drifted = generate(400, seed=99, drift=1.5, concept=1.0)
    embedded = _embedded_loop(today, drifted)
    embedded_seconds = time.monotonic() - started
    for path in partitions:  # the source data on S3, as it was before the drifted batch
        body = original_today if path == today else path.read_bytes()
        s3.put_object(Bucket=bucket, Key=f"data/churn/daily/{path.name}", Body=body)

    # -- the topology ----------------------------------------------------------------------------
    queue = f"mlops-it-{uuid.uuid4().hex[:10]}"
    api_port, mlflow_port = _free_port(), _free_port()
    placement = topology.Placement(
        postgres=f"{PG['host']}:{PG['port']}",
        postgres_user=PG["user"],
        postgres_password="",
        airflow_db=postgres_db.rsplit("/", 1)[1],
        mlflow_db=mlflow_db,
        redis=f"{REDIS[0]}:{REDIS[1]}",
        redis_db=REDIS_DB,
        queue=queue,
        api_host="127.0.0.1",
        api_port=api_port,
        mlflow_host="127.0.0.1",
        mlflow_port=mlflow_port,
        mlflow_ui_url=f"http://127.0.0.1:{mlflow_port}",
        mlflow_listen="127.0.0.1",
        s3_endpoint=endpoint,
        bucket=bucket,
        s3_access_key=S3_CREDENTIALS["aws_access_key_id"],
        s3_secret_key=S3_CREDENTIALS["aws_secret_access_key"],
        s3_region=S3_CREDENTIALS["region_name"],
        jwt_secret=f"distributed-test-{uuid.uuid4().hex}",
        api_secret_key=f"distributed-test-{uuid.uuid4().hex}",
        fernet_key="",
        worker_concurrency=1,  # two workers, one task each: two cores
    )
    spec = _deployed_spec()
    control = _home(tmp_path / "control", spec)
    homes = {name: _home(tmp_path / name, spec) for name in WORKERS}
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS_", "MLFLOW_", "AWS_"))
    }

    def airflow_env(layout: topology.Layout, root: Path) -> dict[str, str]:
        return {
            **clean,
            **topology.airflow_environment(placement, layout),
            **topology.FAST_TEST_SETTINGS,
            "AIRFLOW_HOME": str(root / "airflow"),
            # the processes share one host here, so each log server needs a port of its own
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port()),
        }

    control_env = airflow_env(control, tmp_path / "control")
    dsn = postgres_db

    def airflow(*args, timeout=600):
        out = subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=control_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert out.returncode == 0, (
            f"airflow {' '.join(args)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
        )
        return out.stdout

    services = topology.services(placement, control)
    cluster = Cluster(tmp_path)
    try:
        # MLflow migrates its database while `airflow db migrate` migrates Airflow's
        cluster.start(
            "mlflow",
            [sys.executable, "-m", *services["mlflow"].command],
            {**clean, **services["mlflow"].environment},
        )
        airflow(*services["airflow-init"].command, timeout=900)
        for name in ("airflow-apiserver", "airflow-dag-processor", "airflow-scheduler", "airflow-triggerer"):
            cluster.start(name, [sys.executable, "-m", "airflow", *services[name].command], control_env)
        for name in WORKERS:
            root = tmp_path / name
            (root / "mlops_worker_identity.py").write_text(IDENTITY.format(name=name))
            env = airflow_env(homes[name], root)
            env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] = "mlops_worker_identity.hostname"
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
            worker = topology.services(placement, homes[name])["airflow-worker"]
            assert worker.environment == {k: v for k, v in env.items() if k in worker.environment}
            celery_hostname = f"{name}-{uuid.uuid4().hex[:6]}"  # unique on the broker
            cluster.start(
                name,
                [sys.executable, "-m", "airflow", *worker.command, "--celery-hostname", celery_hostname],
                env,
            )

        def mlflow_up():
            try:
                with urllib.request.urlopen(f"{placement.mlflow_url}/health", timeout=2) as resp:
                    return resp.status == 200
            except OSError:
                return False

        cluster.wait("mlflow server", mlflow_up, 600)
        cluster.wait(
            "the DAG processor to parse churn_training and churn_monitoring",
            lambda: (
                len(
                    _query(
                        dsn, "SELECT dag_id FROM dag WHERE dag_id IN ('churn_training', 'churn_monitoring')"
                    )
                )
                == 2
            ),
            600,
        )

        def finished(dag_id, run_type):
            def check():
                rows = _query(
                    dsn,
                    "SELECT run_id, state FROM dag_run WHERE dag_id = %s AND run_type = %s "
                    "AND state IN ('success', 'failed')",
                    (dag_id, run_type),
                )
                return {"run_id": rows[0][0], "state": rows[0][1]} if rows else None

            return check

        def outcome(dag_id, run_id):
            tis = _query(
                dsn,
                "SELECT task_id, state, hostname FROM task_instance WHERE dag_id = %s AND run_id = %s",
                (dag_id, run_id),
            )
            xcoms = _query(
                dsn,
                "SELECT task_id, value FROM xcom WHERE dag_id = %s AND run_id = %s AND key = 'return_value'",
                (dag_id, run_id),
            )
            returned = {t: (json.loads(v) if isinstance(v, str) else v) for t, v in xcoms}
            return {t: s for t, s, _ in tis}, returned, {t: h for t, _, h in tis if h}

        airflow("dags", "unpause", "--treat-dag-id-as-regex", "--yes", "^churn_(training|monitoring)$")
        airflow("dags", "trigger", "churn_training", "--conf", json.dumps({"reason": "manual"}))
        first = cluster.wait("the manual training run", finished("churn_training", "manual"), 1200)
        first_tasks, first_returned, first_hosts = outcome("churn_training", first["run_id"])
        assert first["state"] == "success", (first_tasks, cluster.tails())

        # the world moves: today's batch is replaced by a drifted one; monitoring runs on it
        buf = tmp_path / "drifted.parquet"
        drifted.to_parquet(buf, index=False)
        s3.put_object(Bucket=bucket, Key=f"data/churn/daily/{today.name}", Body=buf.read_bytes())
        airflow("dags", "trigger", "churn_monitoring")
        mon = cluster.wait("the monitoring run", finished("churn_monitoring", "manual"), 1200)
        mon_tasks, mon_returned, mon_hosts = outcome("churn_monitoring", mon["run_id"])
        assert mon["state"] == "success", (mon_tasks, cluster.tails())
        assert mon_tasks["request_retrain"] == "success", mon_tasks

        # ...and the scheduler starts training on the retrain asset, by itself
        retrain = cluster.wait(
            "the asset-triggered training run", finished("churn_training", "asset_triggered"), 1200
        )
        re_tasks, re_returned, re_hosts = outcome("churn_training", retrain["run_id"])
        assert retrain["state"] == "success", (re_tasks, cluster.tails())
        distributed_seconds = time.monotonic() - started - embedded_seconds

        # -- tasks ran on both workers ---------------------------------------------------------
        hosts = {
            f"{dag}.{task}": host
            for dag, found in (
                ("training#1", first_hosts),
                ("monitoring", mon_hosts),
                ("training#2", re_hosts),
            )
            for task, host in found.items()
        }
        print(f"\ntask -> worker: {json.dumps(hosts, indent=1, sort_keys=True)}")
        print(f"embedded loop {embedded_seconds:.0f} s; distributed loop {distributed_seconds:.0f} s")
        assert set(hosts.values()) == set(WORKERS), hosts

        # -- the outcome is the embedded run's ---------------------------------------------------
        distributed = [
            _decisions(first_tasks, first_returned),
            _decisions(mon_tasks, mon_returned),
            _decisions(re_tasks, re_returned),
        ]
        assert distributed == embedded
        assert str(distributed[0]["deploy"]["version"]) == "1", distributed[0]
        assert distributed[1]["request_retrain"]["retrain"] is True, distributed[1]
        gate = distributed[2]["evaluate"]
        print(f"the retrain's gate: {gate['status']} {gate['reasons']}")

        # -- MLflow: the loop's versions and lineage, read back through the server ---------------
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=placement.mlflow_url)
        assert len(client.search_model_versions("name = 'churn'")) == 2
        champion = client.get_model_version_by_alias("churn", "champion").version
        assert str(champion) == ("2" if gate["promote"] else "1")
        v2_run = client.get_run(client.get_model_version("churn", "2").run_id)
        assert v2_run.data.tags["mlops.trigger_reason"].startswith(
            "retrain requested by monitoring: data drift"
        )
        assert v2_run.data.tags["airflow.dag_id"] == "churn_training"

        # -- no worker-local path reached XCom, MLflow or storage --------------------------------
        seen: dict[str, str] = {}
        for dag_id, run_id, task_id, key, value in _query(
            dsn, "SELECT dag_id, run_id, task_id, key, value FROM xcom"
        ):
            seen[f"xcom {dag_id}/{run_id}/{task_id}/{key}"] = json.dumps(value, default=str)
        experiment = client.get_experiment_by_name("churn")
        for run in client.search_runs([experiment.experiment_id], max_results=1000):
            where = f"mlflow run {run.info.run_id}"
            seen[f"{where} params"] = json.dumps(run.data.params)
            seen[f"{where} tags"] = json.dumps(run.data.tags)
            seen[f"{where} artifact_uri"] = run.info.artifact_uri
            artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
            artifacts |= {a.path for a in client.list_artifacts(run.info.run_id, "gate")}
            for doc in sorted(artifacts & {"training_spec.json", "gate/decision.json"}):
                path = client.download_artifacts(run.info.run_id, doc, str(tmp_path / "downloads"))
                seen[f"{where} {doc}"] = Path(path).read_text()
        for mv in client.search_model_versions("name = 'churn'"):
            seen[f"model version {mv.version}"] = json.dumps({"source": mv.source, "tags": mv.tags})
    finally:
        cluster.stop()

    assert any(k.endswith("training_spec.json") for k in seen), sorted(seen)
    stored = s3.list_objects_v2(Bucket=bucket, Prefix="storage/churn/")
    keys = [o["Key"] for o in stored.get("Contents", [])]
    assert any("/deployments/" in k for k in keys), keys
    assert any("/retrain_requests/" in k for k in keys), keys
    for key in keys:
        if key.endswith(".json"):
            seen[f"s3://{bucket}/{key}"] = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    forbidden = (str(tmp_path), "file:/")
    leaks = {where: text for where, text in seen.items() if any(f in text for f in forbidden)}
    assert not leaks, json.dumps(leaks, indent=1)[:6000]

    # the workers kept nothing in their scratch space: everything went to S3 and MLflow
    for name in WORKERS:
        left = [str(p) for p in Path(homes[name].mlops_home).rglob("*") if p.is_file()]
        assert not left, f"{name} left files in its MLOPS_HOME: {left}"
