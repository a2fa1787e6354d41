"""A password written inside the MLflow URL (``http://user:pw@host``) never reaches XCom (run_url,
model_url, the extra links), the task logs or MLflow's own log lines.

A real `mlflow server` (on PostgreSQL) and a real training run with dag.test(). The server has
no authentication: it ignores the basic-auth header MLflow sends, which is all this test needs.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from mlops_ops.example.churn import write_training_data
from mlops_ops.runner import run_dag
from tests.conftest import load_dag

pytestmark = [pytest.mark.integration, pytest.mark.slow]

USER = "mlops_user"
PASSWORD = "Sup3r-S3cret!pw"
ENCODED = "Sup3r-S3cret%21pw"  # as written in the URL


def _all_xcoms(run_id: str) -> list[tuple[str, str, str]]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(XComModel).filter(XComModel.run_id == run_id).all()
        return [(r.task_id, r.key, json.dumps(XComModel.deserialize_value(r), default=str)) for r in rows]


@pytest.mark.parametrize("where", ["MLFLOW_TRACKING_URI", "connection host"])
def test_a_password_in_the_mlflow_url_is_absent_from_xcom_logs_and_links(
    airflow_db, mlops_home, mlflow_server, monkeypatch, capfd, caplog, where
):
    secret_url = mlflow_server.replace("http://", f"http://{USER}:{ENCODED}@")
    # registered for restoring: the hook exports MLflow's basic-auth variables process-wide
    for var in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    if where == "MLFLOW_TRACKING_URI":
        monkeypatch.setenv("MLFLOW_TRACKING_URI", secret_url)
    else:
        monkeypatch.setenv(
            "AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps({"conn_type": "mlflow", "host": secret_url})
        )
    caplog.set_level(logging.DEBUG)
    write_training_data(mlops_home / "data" / "churn" / "daily", rows=1500, seed=0)

    result = run_dag(load_dag("churn_training"), conf={"reason": "secrets"})

    assert result.state == "success", result.tasks
    train = result.returned["train"]
    # the links point at the server, without the userinfo
    assert train["run_url"].startswith(f"{mlflow_server}/#/experiments/")
    assert train["model_url"] == f"{mlflow_server}/#/models/churn/versions/1"
    assert result.returned["deploy"]["model_url"] == train["model_url"]
    # MLflow was reached with the credentials (the version exists on the server)
    from mlflow import MlflowClient

    assert MlflowClient(tracking_uri=mlflow_server).get_model_version("churn", "1").version == "1"

    xcoms = _all_xcoms(result.run_id)
    assert any(key.startswith("_link_") for _, key, _ in xcoms), [k for _, k, _ in xcoms]
    for task_id, key, value in xcoms:
        for secret in (PASSWORD, ENCODED):
            assert secret not in value, (task_id, key)
        assert f"{USER}:" not in value, (task_id, key)

    out, err = capfd.readouterr()
    logged = "\n".join([out, err, caplog.text, *_task_log_files()])
    assert "View run" in logged or "experiments/" in logged  # MLflow's own lines were captured
    for secret in (PASSWORD, ENCODED):
        assert secret not in logged


def _task_log_files() -> list[str]:
    import os

    logs = Path(os.environ["AIRFLOW_HOME"]) / "logs"
    return [p.read_text(errors="replace") for p in logs.rglob("*.log")] if logs.exists() else []
