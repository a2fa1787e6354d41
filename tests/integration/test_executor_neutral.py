"""Executor neutrality: a task leaves nothing on its worker that a later task needs.

The training DAG runs with storage and source data on ``s3://`` (moto's S3 server, through an
Airflow ``aws`` connection) and MLflow on a real ``mlflow server`` with proxied artifacts, as on
CeleryExecutor or KubernetesExecutor workers that share no disk. Afterwards nothing a later task
or a person reads (XCom, MLflow params, tags and dataset sources, the deployment ledger) names a
worker-local path, and every temporary directory the tasks created is gone.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_ops.example.churn import write_training_data
from mlops_ops.runner import run_dag
from tests.conftest import ROOT, SESSION, load_dag

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: an absolute local path or a file URI inside a string (URIs with a scheme such as s3:// pass)
_LOCAL = re.compile(r"(?:^|[\s'\"(=,])(?:file:|/(?:tmp|home|root|work|var|usr|opt|private)/)")


def _strings(value: Any) -> list[str]:
    """Every string inside a JSON-like value (keys too)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, (list, tuple, set)):
        return [s for v in value for s in _strings(v)]
    return []


def _local_paths(where: str, value: Any, roots: list[str]) -> list[str]:
    return [
        f"{where}: {text[:200]!r}"
        for text in _strings(value)
        if _LOCAL.search(text) or any(root in text for root in roots)
    ]


def _xcoms(dag_id: str, run_id: str) -> dict[str, Any]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(XComModel).where(XComModel.dag_id == dag_id, XComModel.run_id == run_id)
        )
        return {f"{row.task_id}.{row.key}": XComModel.deserialize_value(row) for row in rows}


def test_training_on_s3_leaves_no_local_path_and_no_temporary_files(
    airflow_db, mlops_home, mlflow_server, s3_bucket, tmp_path, monkeypatch
):
    import boto3
    from mlflow import MlflowClient

    from mlops_ops.hooks.storage import DeploymentLedger, PipelineStorage, read_json
    from tests.integration.conftest import S3_CREDENTIALS

    endpoint, bucket = s3_bucket
    conn_id = f"s3_it_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}",
        json.dumps(
            {
                "conn_type": "aws",
                "login": S3_CREDENTIALS["aws_access_key_id"],
                "password": S3_CREDENTIALS["aws_secret_access_key"],
                "extra": {"endpoint_url": endpoint, "region_name": S3_CREDENTIALS["region_name"]},
            }
        ),
    )
    monkeypatch.setenv("MLOPS_STORAGE", f"s3://{bucket}/mlops")
    monkeypatch.setenv("MLOPS_STORAGE_CONN_ID", conn_id)
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps({"conn_type": "mlflow", "host": mlflow_server})
    )

    # the source data on S3 too
    s3 = boto3.client("s3", endpoint_url=endpoint, **S3_CREDENTIALS)
    for path in write_training_data(tmp_path / "upload", rows=2500, seed=0):
        s3.upload_file(str(path), bucket, f"data/churn/daily/{path.name}")
    spec = yaml.safe_load((ROOT / "pipelines" / "churn.yaml").read_text())
    spec["source"]["uri"] = f"s3://{bucket}/data/churn/daily/*.parquet"
    spec["source"]["conn_id_storage"] = conn_id
    (Path(os.environ["MLOPS_PIPELINES"]) / "churn.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))

    # the worker's temporary directory: empty before, and it must be empty after
    scratch = tmp_path / "worker-tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))

    result = run_dag(load_dag("churn_training"), conf={"reason": "executor neutrality"})
    assert result.state == "success", result.tasks
    assert result.tasks["deploy"] == "success", result.tasks

    roots = [str(tmp_path), str(SESSION), str(ROOT), str(mlops_home), os.getcwd(), str(Path.home())]
    found: list[str] = []
    found += _local_paths("XCom", _xcoms("churn_training", result.run_id), roots)

    client = MlflowClient(tracking_uri=mlflow_server)
    run = client.get_run(result.returned["train"]["run_id"])
    found += _local_paths("MLflow run params", run.data.params, roots)
    found += _local_paths("MLflow run tags", run.data.tags, roots)
    for dataset in run.inputs.dataset_inputs:
        found += _local_paths("MLflow dataset source", dataset.dataset.source, roots)
    version = client.get_model_version("churn", result.returned["deploy"]["version"])
    found += _local_paths("MLflow model version tags", version.tags, roots)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:"), run.info.artifact_uri

    ledger = DeploymentLedger(PipelineStorage("churn"))
    state = ledger.read()
    assert [r.version for r in state.records] == [result.returned["deploy"]["version"]]
    for record in state.records:
        found += _local_paths(f"ledger {record.name}", read_json(ledger.record_path(record.name)), roots)
    assert not found, "worker-local paths where another worker reads:\n" + "\n".join(found)

    assert not (mlops_home / "storage").exists(), "nothing written to local storage"
    left = sorted(str(p.relative_to(scratch)) for p in scratch.rglob("*"))
    assert left == [], f"temporary files left on the worker: {left[:20]}"
