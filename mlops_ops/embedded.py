"""The embedded defaults: Airflow on SQLite, MLflow on SQLite with local artifacts, local storage.

Everything lives under ``MLOPS_HOME`` (default ``./.mlops``). These functions only compute paths
and environment variables and write small files; nothing here imports Airflow, so they can run
before Airflow reads its configuration.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

DAG_FILE = '''\
"""Airflow DAG file written by mlops-ops: the DAGs of every spec in {pipelines}."""

from mlops_ops.dag_factory import build_dags

globals().update(build_dags({pipelines!r}))
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
    }


def install_example(home: Path, *, overwrite: bool = True) -> Path:
    """Copy the packaged example pipeline spec to ``<home>/pipelines`` and write the DAG file."""
    pipelines, dags = home / "pipelines", home / "dags"
    pipelines.mkdir(parents=True, exist_ok=True)
    dags.mkdir(parents=True, exist_ok=True)
    spec = pipelines / "churn.yaml"
    if overwrite or not spec.exists():
        spec.write_text(resources.files("mlops_ops.example").joinpath("churn.yaml").read_text())
    (dags / "mlops_pipelines.py").write_text(DAG_FILE.format(pipelines=str(pipelines.resolve())))
    return spec


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
