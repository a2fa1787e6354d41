"""Real services for integration tests: PostgreSQL and an `mlflow server` process on it."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.conftest import service_missing

PG = {
    "host": os.environ.get("MLOPS_TEST_PGHOST", "127.0.0.1"),
    "port": int(os.environ.get("MLOPS_TEST_PGPORT", "5432")),
    "user": os.environ.get("MLOPS_TEST_PGUSER", "postgres"),
}


def _admin():
    import psycopg2

    try:
        conn = psycopg2.connect(dbname="postgres", connect_timeout=3, **PG)
    except psycopg2.OperationalError as err:
        service_missing(f"PostgreSQL is not reachable at {PG['host']}:{PG['port']} as {PG['user']}: {err}")
    conn.autocommit = True
    return conn


@contextlib.contextmanager
def new_database(prefix: str = "mlops_it"):
    """A fresh, empty PostgreSQL database until the block ends, then dropped; yields its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = _admin()
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def postgres_db():
    """A fresh, empty PostgreSQL database; dropped afterwards. Yields its SQLAlchemy URL."""
    with new_database() as url:
        yield url


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(what: str, command: list[str], ready_url: str, logfile, *, env=None, timeout: float = 300):
    """Run ``command`` as a server process until the block ends; ready when ``ready_url`` answers.

    A process that exits, or does not answer within ``timeout`` seconds (generous: a loaded
    machine starts servers slowly), fails the test with the tail of its log. Stopped with SIGTERM,
    then SIGKILL after 20 s.
    """
    with open(logfile, "w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    with urllib.request.urlopen(ready_url, timeout=2) as resp:
                        if resp.status == 200:
                            break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail(f"{what} did not start: {Path(logfile).read_text()[-3000:]}")
                time.sleep(0.3)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def mlflow_server(postgres_db, tmp_path):
    """`mlflow server` with its backend store on PostgreSQL and artifacts served by the server."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        postgres_db.replace("postgresql://", "postgresql+psycopg2://"),
        "--artifacts-destination",
        str(tmp_path / "served-artifacts"),
        "--serve-artifacts",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    # MLflow 3 starts a pool of job-runner processes (GenAI scorers) by default: ~8 processes of
    # ~250 MB that nothing here uses
    env = {**os.environ, "MLFLOW_TRACKING_URI": "", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with serving("mlflow server", command, f"{url}/health", tmp_path / "mlflow-server.log", env=env):
        yield url


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A local S3-compatible server (moto's server mode) as a process; yields its endpoint URL.

    moto stands in for AWS S3, which cannot be reached from here. It implements the conditional
    put (``If-None-Match: *``) the deployment ledger's claims rely on. Credentials are any strings.
    """
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    logfile = tmp_path_factory.mktemp("moto") / "moto-server.log"
    server = os.path.join(os.path.dirname(sys.executable), "moto_server")
    with serving("moto_server", [server, "-H", "127.0.0.1", "-p", str(port)], f"{url}/moto-api/", logfile):
        yield url


S3_CREDENTIALS = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "region_name": "us-east-1",
}


@pytest.fixture
def s3_bucket(s3_server):
    """A fresh, empty bucket on :func:`s3_server`; yields ``(endpoint_url, bucket_name)``."""
    import boto3

    name = f"mlops-it-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server, **S3_CREDENTIALS).create_bucket(Bucket=name)
    return s3_server, name


def trained_churn(root: Path, seeds: tuple[int, ...] = (0,)) -> tuple[Path, Path]:
    """An MLOPS_HOME under ``root`` whose churn model has one version per seed, each trained by the
    training DAG (1200 rows), and its pipelines folder; champion v1. Returns (home, pipelines)."""
    from mlops_ops.example.churn import write_training_data
    from mlops_ops.runner import run_dag
    from tests.conftest import load_dag, mlflow_client, seed_mlflow_store

    home, pipelines = root / "home", root / "pipelines"
    pipelines.mkdir(parents=True)
    spec = (Path(__file__).parents[2] / "pipelines" / "churn.yaml").read_text()
    (pipelines / "churn.yaml").write_text(spec.replace("/daily/*.parquet", "/train/*.parquet"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(home))
        mp.setenv("MLOPS_PIPELINES", str(pipelines))
        seed_mlflow_store(home)
        for seed in seeds:
            write_training_data(home / "data" / "churn" / "train", rows=1200, seed=seed)
            result = run_dag(load_dag("churn_training"), conf={})
            assert result.state == "success", result.tasks
        client = mlflow_client()
        versions = sorted(int(v.version) for v in client.search_model_versions("name = 'churn'"))
        assert versions == list(range(1, len(seeds) + 1))
        client.set_registered_model_alias("churn", "champion", "1")
    return home, pipelines
