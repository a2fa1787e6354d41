"""A real Airflow on one machine for integration tests: API server, DAG processor and scheduler with
the LocalExecutor on a PostgreSQL metadata DB, as processes; the CLI and the DB to drive and watch it.

Used by test_scheduler.py and test_backfill.py. (The CeleryExecutor topology of
test_distributed.py is described by mlops_ops/topology.py instead.)
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

DAG_FILE = (
    "# airflow DAG file: the DAG factory over $MLOPS_PIPELINES, retries off\n"
    "import os\n"
    "from mlops_ops.dag_factory import build_dags\n"
    "globals().update(build_dags(os.environ['MLOPS_PIPELINES'], default_args={'retries': 0}))\n"
)


def airflow(env, *args, timeout=180):
    """``airflow <args>`` in ``env``; its stdout. Fails the test with its output if it fails."""
    out = subprocess.run(
        [sys.executable, "-m", "airflow", *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert out.returncode == 0, (
        f"airflow {' '.join(args)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    )
    return out.stdout


def query(dsn, sql):
    """The rows of ``sql`` on the metadata DB; [] while its tables do not exist yet."""
    import psycopg2

    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        try:
            cur.execute(sql)
        except psycopg2.Error:  # tables not there yet
            return []
        return cur.fetchall()


def wait(what, predicate, timeout, procs, logs):
    """Poll ``predicate`` every 2 s until it returns something true; fail with the services' logs
    when ``timeout`` seconds pass or a service exits."""
    deadline = time.monotonic() + timeout
    dead: list[str] = []
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        dead = [name for name, p in procs.items() if p.poll() is not None]
        if dead:
            break
        time.sleep(2)
    tails = "\n".join(f"--- {p.name} ---\n{p.read_text()[-3000:]}" for p in logs)
    pytest.fail(f"timed out waiting for {what} (exited: {dead})\n{tails}")


def local_executor_env(
    tmp_path: Path, postgres_db: str, *, port: int, dags: Path, home: Path, pipelines: Path, paused: bool
) -> dict[str, str]:
    """The environment of every Airflow process and CLI call: this machine's environment without
    any AIRFLOW*, MLOPS_* or MLFLOW_* setting of the test session, then the test's own."""
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
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": str(paused),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API_AUTH__JWT_SECRET": "integration-test-secret-0123456789abcdef",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            # a loaded machine: the API server may take longer than the default 5 s to answer a
            # task's supervisor, which would then kill the task
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
            "AIRFLOW__WORKERS__EXECUTION_API_RETRIES": "10",
            "MLOPS_HOME": str(home),
            "MLOPS_PIPELINES": str(pipelines),
            "GX_ANALYTICS_ENABLED": "False",
        }
    )
    return env


@contextlib.contextmanager
def running_airflow(env: dict[str, str], tmp_path: Path, port: int) -> Iterator[tuple[dict, list[Path]]]:
    """The API server, DAG processor and scheduler until the block ends; yields ``(procs, logs)``
    for :func:`wait`. Each logs to ``tmp_path/<name>.log``; stopped with SIGTERM, then SIGKILL."""
    procs: dict[str, subprocess.Popen] = {}
    logs: list[Path] = []
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
        yield procs, logs
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
