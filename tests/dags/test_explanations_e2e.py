"""Explanations end to end with dag.test(): training logs the SHAP profile, monitoring compares it.

A champion is trained on two weeks of daily partitions (real Airflow, real MLflow on SQLite, real
files). Its run holds ``explain/shap_importance.json``, the bar chart and ``shap.<column>``
metrics. The monitoring DAG then runs on a clean day (no attribution drift), on a day where the
column the model leans on most is stuck at one value (attribution drift, reported, no retrain
requested for it), and on a tiny batch (insufficient data).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from mlops_ops.example import churn
from mlops_ops.example.churn import write_partitions
from mlops_ops.runner import run_dag
from tests.conftest import champion_version, load_dag, mlflow_client

pytestmark = pytest.mark.slow

D0 = dt.date(2026, 3, 1)


def _at(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def test_training_logs_the_profile_and_monitoring_reports_attribution_drift(
    airflow_db, mlops_home, mlflow_store
):
    daily = mlops_home / "data" / "churn" / "daily"
    write_partitions(daily, start=D0 - dt.timedelta(days=14), days=15, rows_per_day=300, seed=5)
    trained = run_dag(load_dag("churn_training"), logical_date=_at(D0 - dt.timedelta(days=1)))
    assert trained.state == "success", trained.tasks
    client = mlflow_client()
    assert champion_version(client) == "1"
    run = client.get_run(trained.returned["train"]["run_id"])
    assert {a.path for a in client.list_artifacts(run.info.run_id, "explain")} >= {
        "explain/shap_importance.json",
        "explain/shap_importance.png",
    }
    profile = json.loads(
        Path(client.download_artifacts(run.info.run_id, "explain/shap_importance.json")).read_text()
    )
    assert (profile["explainer"], profile["output"]) == ("tree", "log_odds")
    assert set(profile["mean_abs_shap"]) == set(churn.NUMERIC + churn.CATEGORICAL)
    assert run.data.metrics[f"shap.{next(iter(profile['mean_abs_shap']))}"] == pytest.approx(
        max(profile["mean_abs_shap"].values())
    )
    leaned_on = next(c for c in profile["mean_abs_shap"] if c in churn.NUMERIC)

    # D0: a clean batch; D0+1: the most relied-on numeric column stuck at its median; D0+2: 40 rows
    stuck = churn.generate(400, seed=77)
    stuck[leaned_on] = stuck[leaned_on].median()
    stuck.to_parquet(daily / f"{D0 + dt.timedelta(days=1)}.parquet", index=False)
    churn.generate(40, seed=78).to_parquet(daily / f"{D0 + dt.timedelta(days=2)}.parquet", index=False)

    results = {}
    for i in range(3):
        day = D0 + dt.timedelta(days=i)
        monitored = run_dag(load_dag("churn_monitoring"), logical_date=_at(day))
        assert monitored.tasks["detect_attribution_drift"] == "success", monitored.tasks
        results[i] = monitored
    clean, drifted, tiny = (results[i].returned["detect_attribution_drift"] for i in range(3))
    assert clean["status"] == "no_drift", clean
    assert drifted["status"] == "drift", drifted
    assert drifted["lower"] > drifted["delta"]
    assert tiny["status"] == "insufficient_data"
    assert tiny["moved"] is None

    # the report names the column that moved, and says it does not trigger a retrain
    path = Path(drifted["report_uri"].removeprefix("file:"))
    report = json.loads(path.read_text())
    assert report["columns"][0]["column"] == leaned_on
    assert report["retrain_trigger"] is False
    assert path.with_suffix(".html").exists()
    runs = client.search_runs(
        [run.info.experiment_id], filter_string="tags.`mlops.kind` = 'monitoring.attribution'"
    )
    assert len(runs) == 3
    assert {r.data.tags["mlops.status"] for r in runs} == {"drift", "no_drift", "insufficient_data"}

    # the demo's lines: the profile per version, side by side, and each attribution run
    from mlops_ops.demo_explain import describe_explanations

    lines = describe_explanations(mlops_home, "churn", ["1", "2"])
    text = "\n".join(lines)
    assert lines[0].startswith("How v1 and v2 explain their predictions")
    assert f"v1 leans most on {leaned_on}" in text or leaned_on in lines[2]
    assert "v2: not registered" in text
    assert sum(line.startswith(f"  {D0 + dt.timedelta(days=1)} vs v1: drift") for line in lines) == 1
    assert f"most: {leaned_on}" in text
