"""A capped training sample is recorded in the lineage: MLflow params, a tag, training_spec.json.

Real Airflow (dag.test()), real MLflow (SQLite), real storage.
"""

from __future__ import annotations

import json

import pytest

from mlops_ops.example.churn import write_training_data
from mlops_ops.runner import run_dag
from tests.conftest import mlflow_client

pytestmark = pytest.mark.slow


def test_the_training_sample_cap_is_recorded_in_the_lineage(airflow_db, mlops_home, mlflow_store, dag_loader):
    spec_path = mlops_home.parent / "pipelines" / "churn.yaml"
    spec = spec_path.read_text()
    assert "\nmodel:\n" in spec
    spec_path.write_text(spec.replace("\nmodel:\n", "\nmodel:\n  max_training_rows: 1000\n", 1))
    write_training_data(mlops_home / "data" / "churn" / "daily", rows=3000, seed=0)
    result = run_dag(dag_loader("churn_training"), conf={"reason": "capped"})
    assert result.tasks["train"] == "success", result.tasks
    client = mlflow_client()
    run = client.get_run(result.returned["train"]["run_id"])
    assert run.data.params["max_training_rows"] == "1000"
    assert run.data.params["n_train"] == "1000"
    available = int(run.data.params["n_train_available"])
    assert available > 1000
    assert run.data.tags["mlops.training_sample"].startswith(f"1000 of {available} training rows")
    path = client.download_artifacts(run.info.run_id, "training_spec.json")
    with open(path) as fh:
        doc = json.load(fh)
    assert doc["training_sample"] == {
        "cap": 1000,
        "rows": 1000,
        "available": available,
        "seed": doc["seed"],
        "stratified_by": "churned",
    }
