"""The training DAG end to end with dag.test(): real Airflow (SQLite), real MLflow, real GX."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops_ops.example.churn import write_training_data
from mlops_ops.runner import run_dag
from tests.conftest import champion_version, mlflow_client, version_count

pytestmark = pytest.mark.slow


def _data(home: Path, **kwargs) -> Path:
    return write_training_data(home / "data" / "churn" / "daily", rows=kwargs.pop("rows", 3000), **kwargs)


def test_first_run_promotes_worse_run_is_rejected_and_rerun_reuses_snapshot(
    airflow_db, mlops_home, mlflow_store, dag_loader
):
    _data(mlops_home, seed=0)
    first = run_dag(dag_loader("churn_training"), conf={"reason": "first"})
    assert first.state == "success", first.tasks
    assert first.tasks == {t: "success" for t in ("ingest", "validate", "train", "evaluate", "deploy")}
    client = mlflow_client()
    assert champion_version(client) == "1"
    decision = first.returned["evaluate"]
    assert decision["promote"] is True
    assert decision["baseline_version"] is None  # recorded as "no baseline"
    assert any("no baseline" in r for r in decision["reasons"])

    # lineage on the run and the version (docs/architecture.md, "MLflow lineage")
    run = client.get_run(first.returned["train"]["run_id"])
    snap = first.returned["ingest"]
    for key in (
        "airflow.dag_id",
        "airflow.run_id",
        "airflow.task_id",
        "mlops.pipeline",
        "mlops.snapshot_uri",
        "mlops.snapshot_sha256",
        "mlops.code_version",
    ):
        assert run.data.tags.get(key), key
    assert run.data.tags["mlops.snapshot_sha256"] == snap["sha256"]
    assert run.data.tags["mlops.trigger_reason"] == "first"
    assert run.inputs.dataset_inputs, "training data must be logged with log_input"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"reference_profile.json", "training_spec.json"} <= artifacts
    mv = client.get_model_version("churn", "1")
    assert mv.tags["mlops.snapshot_sha256"] == snap["sha256"]
    assert mv.tags["mlops.gate"] == "promote"

    # the deployment ledger and the stored decision
    ledger = sorted((mlops_home / "storage" / "churn" / "deployments").glob("*.json"))
    assert len(ledger) == 1
    record = json.loads(ledger[0].read_text())
    assert record["version"] == "1"
    assert record["previous_version"] is None
    assert Path(decision["report_uri"].removeprefix("file://")).exists()
    html = Path(decision["report_uri"].removeprefix("file://").replace(".json", ".html"))
    # the gate decision states the days of data it judged, and its page is on the MLflow run too
    judged = json.loads(Path(decision["report_uri"].removeprefix("file://")).read_text())["data_interval"]
    assert judged["start"], judged
    assert judged["end"], judged
    assert f"{judged['start']} to {judged['end']}" in html.read_text()
    assert {"decision.json", "decision.html"} <= {
        a.path.rsplit("/", 1)[-1] for a in client.list_artifacts(run.info.run_id, "gate")
    }

    # run 2: noisy labels make a worse model; rejected, champion unchanged, run still succeeds
    _data(mlops_home, seed=1, label_noise=0.35)
    second = run_dag(dag_loader("churn_training"), conf={"reason": "noisy"})
    assert second.state == "success"
    assert second.tasks["train"] == "success"
    assert second.tasks["deploy"] == "skipped"
    rejected = second.returned["evaluate"]
    assert rejected["promote"] is False
    assert rejected["baseline_version"] == "1"
    assert any("roc_auc" in r for r in rejected["reasons"])
    assert champion_version(client) == "1"
    assert client.get_model_version("churn", "2").tags["mlops.gate"] == "reject"
    assert len(list((mlops_home / "storage" / "churn" / "deployments").glob("*.json"))) == 1

    # run 3 on the same data: ingest returns the same snapshot, training has nothing new to learn
    third = run_dag(dag_loader("churn_training"), conf={})
    assert third.returned["ingest"]["sha256"] == second.returned["ingest"]["sha256"]
    assert third.returned["ingest"]["uri"] == second.returned["ingest"]["uri"]
    assert third.returned["ingest"]["created"] is False
    assert third.tasks["train"] == "skipped"
    assert third.tasks["deploy"] == "skipped"
    assert version_count(client) == 2
    snapshots = list((mlops_home / "storage" / "churn" / "snapshots").iterdir())
    assert len(snapshots) == 2

    # force=true retrains the same data anyway (and the gate still guards the champion)
    forced = run_dag(dag_loader("churn_training"), conf={"force": True, "reason": "forced"})
    assert forced.tasks["train"] == "success"
    assert client.get_run(forced.returned["train"]["run_id"]).data.tags["mlops.forced"] == "true"
    assert champion_version(client) == "1"


def test_asset_events_carry_their_extras(airflow_db, mlops_home, mlflow_store, dag_loader):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    _data(mlops_home, seed=3)
    result = run_dag(dag_loader("churn_training"), conf={})
    assert result.state == "success"
    with create_session() as session:
        rows = session.execute(
            select(AssetModel.uri, AssetEvent.extra)
            .join(AssetEvent, AssetEvent.asset_id == AssetModel.id)
            .where(AssetEvent.source_run_id == result.run_id)
        ).all()
    events = {uri: extra for uri, extra in rows}
    assert events["x-mlops://churn/dataset"]["sha256"] == result.returned["ingest"]["sha256"]
    assert events["x-mlops://churn/dataset"]["rows"] == result.returned["ingest"]["rows"]
    assert events["x-mlops://churn/model"]["version"] == result.returned["deploy"]["version"]


def test_hand_written_dag_of_an_existing_deployment(airflow_db, mlops_home, mlflow_store, dag_loader):
    _data(mlops_home, seed=4)
    result = run_dag(dag_loader("example_existing_deployment"), conf={})
    assert result.state == "success", result.tasks
    assert result.tasks["deploy"] == "success"
    assert champion_version(mlflow_client(), "churn_custom") == "1"
