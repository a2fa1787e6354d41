"""The ``<name>_rollback`` DAG end to end with dag.test(): real Airflow, MLflow (SQLite), storage.

v1 and v2 are trained and promoted by the training DAG (the spec's change threshold is relaxed so
that v2 passes the gate); then the rollback DAG puts v1 back, does nothing when run again, refuses
a version that never passed a gate unless forced, and refuses a version that does not exist.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops_ops.example.churn import generate
from mlops_ops.runner import run_dag
from tests.conftest import champion_version, load_dag, mlflow_client

pytestmark = pytest.mark.slow

SPEC = """\
name: churn
source:
  uri: "${MLOPS_HOME}/data/churn/train/*.parquet"
target: churned
features:
  numeric: [tenure_months, monthly_charges, support_calls, data_usage_gb]
  categorical: [contract, region, payment_method]
model:
  estimator: sklearn.linear_model.LogisticRegression
  params: {max_iter: 300}
evaluation:
  primary_metric: roc_auc
  thresholds: {roc_auc: {lower: 0.6}}
  change_thresholds: {roc_auc: {absolute: -0.2}}   # lenient: every sane retrain is promoted
  bootstrap: {enabled: false}
  permutation_importance: false
validation:
  min_rows: 200
"""


@pytest.fixture
def home(mlops_home, mlflow_store):
    (mlops_home.parent / "pipelines" / "churn.yaml").write_text(SPEC)
    return mlops_home


def _train(home: Path, seed: int):
    folder = home / "data" / "churn" / "train"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.parquet"):
        old.unlink()
    generate(1500, seed=seed).to_parquet(folder / "part-0.parquet", index=False)
    result = run_dag(load_dag("churn_training"), conf={"reason": f"seed {seed}"})
    assert result.state == "success", result.tasks
    assert result.tasks["deploy"] == "success", result.returned.get("evaluate")
    return result


def _ledger(home: Path) -> list[dict]:
    records = [json.loads(p.read_text()) for p in (home / "storage" / "churn" / "deployments").glob("*.json")]
    return sorted(records, key=lambda r: r["seq"])


def _rollback(capfd, **conf):
    capfd.readouterr()
    result = run_dag(load_dag("churn_rollback"), conf=conf)
    out = capfd.readouterr()
    return result, out.out + out.err


def _model_events(run_id: str) -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(AssetModel.uri, AssetEvent.extra)
            .join(AssetEvent, AssetEvent.asset_id == AssetModel.id)
            .where(AssetEvent.source_run_id == run_id)
        ).all()
    return [extra for uri, extra in rows if uri == "x-mlops://churn/model"]


def test_rollback_dag_is_manual_with_a_form(home):
    dag = load_dag("churn_rollback")
    assert type(dag.timetable).__name__ == "NullTimetable"  # schedule=None: by hand only
    assert dag.task_ids == ["rollback"]
    assert {"version", "force", "reason"} <= set(dag.params)
    assert dag.params["version"] == "previous"
    assert dag.params["force"] is False
    assert "rollback" in dag.tags
    assert dag.max_active_runs == 1
    assert "previous" in dag.doc_md
    assert {str(a.uri) for a in dag.get_task("rollback").outlets} == {"x-mlops://churn/model"}


def test_roll_back_to_previous_then_idempotent_rerun_then_gate_and_existence_refusals(
    airflow_db, home, capfd
):
    client = mlflow_client()
    _train(home, seed=0)
    second = _train(home, seed=1)
    assert champion_version(client) == "2"
    assert second.returned["deploy"]["previous_version"] == "1"
    assert [(r["seq"], r["version"], r["action"]) for r in _ledger(home)] == [
        (1, "1", "promote"),
        (2, "2", "promote"),
    ]

    # roll back to "previous": v1 serves again, with a rollback record and a model asset event
    back, _ = _rollback(capfd, version="previous", reason="v2 misbehaves in production")
    assert back.state == "success", back.tasks
    assert champion_version(client) == "1"
    returned = back.returned["rollback"]
    assert (returned["version"], returned["previous_version"], returned["changed"]) == ("1", "2", True)
    record = _ledger(home)[-1]
    assert (record["seq"], record["version"], record["previous_version"], record["action"]) == (
        3,
        "1",
        "2",
        "rollback",
    )
    assert record["reason"] == "v2 misbehaves in production"
    assert record["airflow.dag_id"] == "churn_rollback"
    assert record["evidence_uri"] == _ledger(home)[0]["evidence_uri"]  # v1's gate decision
    assert record["decision"]["status"] == "promote"
    assert _model_events(back.run_id) == [{"version": "1", "action": "rollback", "changed": True}]
    tags = client.get_model_version("churn", "1").tags
    assert (tags["mlops.deploy_action"], tags["mlops.previous_champion"], tags["mlops.ledger_seq"]) == (
        "rollback",
        "2",
        "3",
    )

    # running it again: v1 is already champion, nothing is written, the run succeeds
    again, text = _rollback(capfd, version="previous")
    assert again.state == "success", again.tasks
    assert again.returned["rollback"]["changed"] is False
    assert "nothing written" in again.returned["rollback"]["message"]
    assert "nothing written" in text
    assert len(_ledger(home)) == 3
    assert champion_version(client) == "1"

    # a version that never passed a gate (registered by hand) is refused unless forced
    v1 = client.get_model_version("churn", "1")
    ungated = str(client.create_model_version("churn", source=v1.source, run_id=v1.run_id).version)
    refused, text = _rollback(capfd, version=ungated)
    assert refused.state == "failed"
    assert refused.tasks["rollback"] == "failed"
    assert f"churn v{ungated} never passed a gate" in text
    assert "force=true" in text
    assert champion_version(client) == "1"
    assert len(_ledger(home)) == 3

    forced, _ = _rollback(capfd, version=ungated, force=True, reason="hotfix build")
    assert forced.state == "success", forced.tasks
    assert champion_version(client) == ungated
    record = _ledger(home)[-1]
    assert (record["version"], record["forced"], record["gate_evidence"]) == (ungated, True, None)

    # a version that does not exist
    unknown, text = _rollback(capfd, version="99")
    assert unknown.state == "failed"
    assert "churn has no version 99" in text
    assert champion_version(client) == ungated
    assert len(_ledger(home)) == 4

    # after all that, the training DAG still promotes through the same ledger
    third = _train(home, seed=2)
    assert third.returned["deploy"]["previous_version"] == ungated
    assert [r["seq"] for r in _ledger(home)] == [1, 2, 3, 4, 5]


def test_a_version_that_is_not_a_number_is_rejected_by_the_form(airflow_db, home):
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError, match="version"):
        run_dag(load_dag("churn_rollback"), conf={"version": "latest"})
