"""Integration with real services: MLflow server on PostgreSQL; a SQL source on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from mlops_ops.example.churn import generate, write_training_data
from mlops_ops.runner import run_dag
from tests.conftest import ROOT, load_dag

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_training_loop_against_an_mlflow_server_on_postgres(
    airflow_db, mlops_home, mlflow_server, monkeypatch
):
    from mlflow import MlflowClient

    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_DEFAULT",
        json.dumps(
            {"conn_type": "mlflow", "host": mlflow_server, "extra": {"ui_url": "http://mlflow.example"}}
        ),
    )
    data = mlops_home / "data" / "churn" / "daily"
    write_training_data(data, rows=2500, seed=0)
    first = run_dag(load_dag("churn_training"), conf={"reason": "integration"})
    assert first.state == "success", first.tasks
    assert first.returned["train"]["run_url"].startswith("http://mlflow.example/#/experiments/")

    write_training_data(data, rows=2500, seed=1, label_noise=0.35)
    second = run_dag(load_dag("churn_training"), conf={})
    assert second.tasks["deploy"] == "skipped"
    # the reference profile was read back through the server's artifact proxy
    assert second.returned["validate"]["reference"] == "champion v1 training data"

    client = MlflowClient(tracking_uri=mlflow_server)
    assert str(client.get_model_version_by_alias("churn", "champion").version) == "1"
    assert client.get_model_version("churn", "2").tags["mlops.gate"] == "reject"
    # nothing went to the embedded store
    assert not (mlops_home / "mlflow.db").exists()


def test_sql_source_with_bound_templated_parameters(airflow_db, mlops_home, postgres_db, monkeypatch):
    import sqlalchemy as sa

    day = dt.date(2024, 3, 5)
    frame = generate(1800, seed=11)
    frame["signup_day"] = [(day + dt.timedelta(days=i % 3 - 1)).isoformat() for i in range(len(frame))]
    engine = sa.create_engine(postgres_db.replace("postgresql://", "postgresql+psycopg2://"))
    frame.to_sql("customers", engine, index=False)
    expected_rows = int((frame["signup_day"] == day.isoformat()).sum())
    engine.dispose()

    spec = (ROOT / "pipelines" / "churn.yaml").read_text().replace("name: churn\n", "name: churn_sql\n")
    spec = re.sub(r"\n  window: .*", "", spec)  # a query filters its own rows
    spec = spec.replace(
        '  uri: "${MLOPS_HOME}/data/churn/daily/*.parquet"\n  format: auto\n',
        "  sql: SELECT * FROM customers WHERE signup_day = %(day)s\n"
        "  conn_id: warehouse\n"
        "  parameters: {day: '{{ ds }}'}\n",
    )
    pipelines = Path(mlops_home).parent / "pipelines"
    (pipelines / "churn_sql.yaml").write_text(spec)
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", postgres_db)

    result = run_dag(
        load_dag("churn_sql_training"),
        conf={},
        logical_date=dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC),
    )
    assert result.state == "success", result.tasks
    snapshot = result.returned["ingest"]
    assert snapshot["rows"] == expected_rows
    manifest = json.loads(Path(snapshot["uri"].removeprefix("file://"), "manifest.json").read_text())
    assert manifest["source"]["kind"] == "sql"
    assert manifest["source"]["parameters"] == {"day": "2024-03-05"}  # rendered, bound, not formatted in
    assert result.tasks["deploy"] == "success"
