"""The issue's tampered snapshot, end to end: never trained on, gated on or reused.

Real Airflow (dag.test()), real MLflow (SQLite), real storage. After a first training run, the
snapshot's data.parquet is replaced by a valid Parquet file with every label inverted (its
content no longer matches its name). Training and evaluation on it are refused with the champion
unchanged; a forced retrain re-ingests, rewrites the snapshot and trains on the true data.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowFailException

from mlops_ops.example.churn import write_training_data
from mlops_ops.operators.evaluate import EvaluateModelOperator
from mlops_ops.operators.train import TrainModelOperator
from mlops_ops.runner import run_dag
from tests.conftest import champion_version, mlflow_client, version_count

pytestmark = pytest.mark.slow


class _TI(SimpleNamespace):
    def xcom_push(self, key, value):
        pass


def _context(task_id: str) -> dict:
    return {
        "ti": _TI(dag_id="churn_training", run_id="manual__tampered", task_id=task_id),
        "outlet_events": defaultdict(SimpleNamespace),
    }


def test_a_tampered_snapshot_is_refused_and_the_champion_stays(airflow_db, mlops_home, dag_loader):
    write_training_data(mlops_home / "data" / "churn" / "daily", rows=3000, seed=0)
    first = run_dag(dag_loader("churn_training"), conf={"reason": "first"})
    assert first.state == "success", first.tasks
    client = mlflow_client()
    assert champion_version(client) == "1"
    v1_auc = first.returned["train"]["metrics"]["roc_auc"]

    snapshot = first.returned["ingest"]
    data_file = Path(snapshot["uri"].removeprefix("file://")) / "data.parquet"
    frame = pd.read_parquet(data_file)
    frame["churned"] = 1 - frame["churned"]
    frame.to_parquet(data_file, index=False)  # a valid Parquet file, every label inverted

    train = TrainModelOperator(
        task_id="train",
        pipeline="churn",
        snapshot=snapshot,
        target="churned",
        estimator="sklearn.ensemble.HistGradientBoostingClassifier",
        force=True,
    )
    with pytest.raises(AirflowFailException) as err:
        train.execute(_context("train"))
    assert snapshot["sha256"] in str(err.value)
    assert "re-ingest" in str(err.value)
    evaluate = EvaluateModelOperator(
        task_id="evaluate", pipeline="churn", model={"version": "1"}, snapshot=snapshot
    )
    with pytest.raises(AirflowFailException, match="failed its integrity check"):
        evaluate.execute(_context("evaluate"))
    assert version_count(client) == 1
    assert champion_version(client) == "1"

    # a forced retrain re-ingests: the damaged snapshot is rewritten from the source, not reused
    forced = run_dag(dag_loader("churn_training"), conf={"force": True, "reason": "after tampering"})
    assert forced.state == "success", forced.tasks
    assert forced.returned["ingest"]["sha256"] == snapshot["sha256"]
    assert forced.returned["ingest"]["created"] is True
    assert forced.returned["train"]["metrics"]["roc_auc"] == pytest.approx(v1_auc)  # the true labels
    assert list((data_file.parent.parent / ".damaged").iterdir())
