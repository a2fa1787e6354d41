"""The embedded defaults: Airflow on SQLite, MLflow on SQLite with local artifacts, local storage.

Everything lives under ``MLOPS_HOME`` (default ``./.mlops``). These functions only compute paths
and environment variables and write small files; nothing here imports Airflow, so they can run
before Airflow reads its configuration.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

DAG_FILE = '''\
"""Airflow DAG file written by mlops-ops: the DAGs of every spec in {pipelines}."""

from mlops_ops.dag_factory import build_dags

globals().update(build_dags({pipelines!r}))
'''

EXAMPLE_DAG_FILE = '''\
"""Airflow DAG file written by mlops-ops: the hand-written example DAG (operators one by one)."""

from mlops_ops.example.existing_deployment import dag

__all__ = ["dag"]
'''


def embedded_env(home: Path) -> dict[str, str]:
    """Environment for Airflow and mlops-ops on the embedded defaults under ``home``."""
    home = home.resolve()
    return {
        "MLOPS_HOME": str(home),
        "MLOPS_PIPELINES": str(home / "pipelines"),
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow' / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO"),
        "GX_ANALYTICS_ENABLED": "False",
        "MLFLOW_TRACKING_URI": os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}",
        "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING": "false",
        # MLflow's own logging set-up writes its INFO lines to stderr, which Airflow's task log
        # shows as ERROR; without it they reach Airflow's log handlers at their real level
        "MLFLOW_CONFIGURE_LOGGING": "false",
    }


def up_env(home: Path, *, airflow_port: int, mlflow_port: int) -> dict[str, str]:
    """Environment of ``mlops-ops up``: the embedded defaults, the API server's port (where task
    processes reach its Execution API too), and the MLflow UI's address for the task links
    (``MLOPS_MLFLOW_UI_URL`` and ``AIRFLOW__CORE__EXECUTION_API_SERVER_URL`` set by the user win)."""
    env = {**os.environ, **embedded_env(home)}
    # `airflow standalone` starts its components as `airflow ...` from PATH: use this environment's
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["AIRFLOW__API__PORT"] = str(airflow_port)
    # this machine only, as the MLflow UI: an admin login kept in a plain file is no service for
    # the network (Airflow's default is every interface); set AIRFLOW__API__HOST to widen it
    env.setdefault("AIRFLOW__API__HOST", "127.0.0.1")
    # task processes reach the API server here; Airflow's default is port 8080 whatever the port
    env.setdefault("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", f"http://localhost:{airflow_port}/execution/")
    env.setdefault("MLOPS_MLFLOW_UI_URL", f"http://localhost:{mlflow_port}")
    # MLflow 3 would start a pool of job-runner processes for GenAI scorers, which nothing here uses
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    return env


def install_example(home: Path, *, overwrite: bool = True) -> Path:
    """Copy the packaged example pipeline spec to ``<home>/pipelines`` and write the DAG file."""
    pipelines, dags = home / "pipelines", home / "dags"
    pipelines.mkdir(parents=True, exist_ok=True)
    dags.mkdir(parents=True, exist_ok=True)
    spec = pipelines / "churn.yaml"
    if overwrite or not spec.exists():
        spec.write_text(resources.files("mlops_ops.example").joinpath("churn.yaml").read_text())
    (dags / "mlops_pipelines.py").write_text(DAG_FILE.format(pipelines=str(pipelines.resolve())))
    (dags / "example_existing_deployment.py").write_text(EXAMPLE_DAG_FILE)
    return spec


class _Stop(Exception):
    """A termination signal reached :func:`supervise`."""


def supervise(commands: Sequence[Sequence[str]], env: dict[str, str], *, grace: float = 20.0) -> int:
    """Run ``commands`` side by side until one exits or this process gets SIGINT, SIGTERM or SIGHUP;
    then stop every one of them with all the processes they started.

    Each command runs in its own session (process group), so that stopping it reaches its children
    too (``airflow standalone`` starts the scheduler, API server, DAG processor and triggerer):
    SIGTERM to each group, SIGKILL to what is left after ``grace`` seconds.

    :returns: 0 when stopped by a signal, else the exit status of the command that exited first.
    """

    def stop(signum: int, frame: object) -> None:
        raise _Stop

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    procs: list[subprocess.Popen[bytes]] = []
    status = 0
    try:
        for cmd in commands:
            procs.append(subprocess.Popen(list(cmd), env=env, start_new_session=True))
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        status = next(p.returncode for p in procs if p.returncode is not None)
    except (_Stop, KeyboardInterrupt):
        status = 0
    finally:
        for sig in previous:  # a second signal must not interrupt the clean-up
            signal.signal(sig, signal.SIG_IGN)
        _stop_groups(procs, grace)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status


def _stop_groups(procs: list[subprocess.Popen[bytes]], grace: float) -> None:
    for p in procs:
        _signal_group(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    while time.monotonic() < deadline and any(_group_alive(p.pid) for p in procs):
        time.sleep(0.2)  # the children of a stopped leader may still be shutting down
    for p in procs:
        _signal_group(p.pid, signal.SIGKILL)
        p.wait()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def migrate_airflow_db(env: dict[str, str], log_file: Path) -> None:
    """``airflow db migrate`` (idempotent; a few seconds on SQLite)."""
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    with log_file.open("a") as log:
        subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
        )


def reset_pipeline_state(home: Path, pipeline: str) -> None:
    """Forget the example's models, snapshots and data (the demo starts from nothing)."""
    for path in (
        home / "mlflow.db",
        home / "mlartifacts",
        home / "storage" / pipeline,
        home / "data" / pipeline,
    ):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
