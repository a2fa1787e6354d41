"""The estimate before labels (CBPE) in the monitoring DAG, end to end with dag.test().

Real Airflow, real MLflow (sqlite under a tmp MLOPS_HOME), real files; nothing is mocked. A
champion is trained on two weeks of churn partitions; its training run logs the estimation
reference. The monitoring DAG then runs on a clean day, a day with covariate shift only (charges,
calls and contracts move, churn still depends on them as before) and a day with concept shift (how
churn depends on them changes). The batches carry their labels, so the report shows the realised
metric beside the estimate: close under covariate shift, far apart under concept shift (the stated
limit). Last, the champion's reference artifact is removed (a version trained before references
existed): the task skips and says why.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest

from mlops_ops.artifacts import ESTIMATION_REFERENCE_ARTIFACT
from mlops_ops.core.estimation import describe_estimate
from mlops_ops.example.churn import write_partitions
from mlops_ops.runner import run_dag
from tests.conftest import champion_version, load_dag, mlflow_client, seed_mlflow_store

pytestmark = pytest.mark.slow

D0 = dt.date(2026, 3, 1)  # first monitored day
REPORT_KEYS = {"metric", "estimate", "lower", "upper", "rows", "champion_version", "data_interval"}


def _at(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def loop(airflow_db, tmp_path_factory):
    from tests.conftest import ROOT

    root = tmp_path_factory.mktemp("estimate")
    home, pipelines = root / "home", root / "pipelines"
    pipelines.mkdir()
    shutil.copy(ROOT / "pipelines" / "churn.yaml", pipelines)
    daily = home / "data" / "churn" / "daily"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(home))
        mp.setenv("MLOPS_PIPELINES", str(pipelines))
        seed_mlflow_store(home)
        write_partitions(daily, start=D0 - dt.timedelta(days=14), days=15, rows_per_day=300, seed=7)
        write_partitions(daily, start=D0 + dt.timedelta(days=1), days=1, rows_per_day=1500, seed=7,
                         drift_from=D0, drift=1.5)  # fmt: skip
        write_partitions(daily, start=D0 + dt.timedelta(days=2), days=2, rows_per_day=1500, seed=7,
                         drift_from=D0, drift=0.0, concept=1.5)  # fmt: skip
        trained = run_dag(load_dag("churn_training"), logical_date=_at(D0 - dt.timedelta(days=1)))
        assert trained.state == "success", trained.tasks
        assert champion_version(mlflow_client()) == "1"
        days = {
            i: run_dag(load_dag("churn_monitoring"), logical_date=_at(D0 + dt.timedelta(days=i)))
            for i in range(3)
        }
        # a champion trained before references were logged: remove its artifact, run again
        client = mlflow_client()
        run_id = trained.returned["train"]["run_id"]
        reference = json.loads(open(client.download_artifacts(run_id, ESTIMATION_REFERENCE_ARTIFACT)).read())
        artifacts = client.get_run(run_id).info.artifact_uri.removeprefix("file://")
        shutil.rmtree(f"{artifacts}/estimation")
        old = run_dag(load_dag("churn_monitoring"), logical_date=_at(D0 + dt.timedelta(days=3)))
        yield {"trained": trained, "days": days, "old": old, "reference": reference}


def test_training_logs_the_reference(loop):
    doc = loop["reference"]
    assert doc["method"] == "cbpe"
    assert doc["rows"] == len(doc["proba"]) == len(doc["positive"]) > 500
    assert doc["metrics"]["roc_auc"] == pytest.approx(loop["trained"].returned["train"]["metrics"]["roc_auc"])


def test_report_and_mlflow_run(loop):
    for run in loop["days"].values():
        assert run.state == "success", run.tasks
        assert run.tasks["estimate_performance"] == "success"
    report = loop["days"][0].returned["estimate_performance"]
    assert REPORT_KEYS <= set(report)
    assert report["metric"] == "roc_auc"
    assert report["champion_version"] == "1"
    assert report["rows"] == 300
    assert report["lower"] < report["estimate"] < report["upper"]
    assert report["reference"] == pytest.approx(loop["trained"].returned["train"]["metrics"]["roc_auc"])
    assert "concept shift" in report["caveat"]
    assert set(report["metrics"]) == {"roc_auc", "accuracy", "f1"}
    stored = json.loads(open(report["report_uri"].removeprefix("file://")).read())
    assert stored["estimate"] == report["estimate"]
    html = open(report["report_uri"].removeprefix("file://")[: -len("json")] + "html").read()
    assert "before labels" in html
    client = mlflow_client()
    runs = client.search_runs(
        [client.get_experiment_by_name("churn").experiment_id], "tags.`mlops.kind` = 'monitoring.estimate'"
    )
    assert len(runs) == 3
    assert {r.data.tags["mlops.champion_version"] for r in runs} == {"1"}
    lines = describe_estimate(report)
    assert lines[0].startswith("estimated before labels: AUC ")


def test_estimate_follows_covariate_shift_but_not_concept_shift(loop):
    clean, covariate, concept = (loop["days"][i].returned["estimate_performance"] for i in range(3))
    for report in (clean, covariate):
        assert report["realised"] is not None
        assert abs(report["estimate"] - report["realised"]) < 0.04, report
        assert report["lower"] <= report["realised"] <= report["upper"], report
        assert report["calibrated"] is True  # gradient boosting's raw probabilities overstate its AUC
    # the drift detector saw the covariate shift; the estimate still tracked the realised metric
    assert loop["days"][1].returned["detect_drift"]["status"] == "drift"
    # concept shift: the realised AUC falls, the estimate cannot see it (the stated limit)
    assert concept["realised"] < concept["estimate"] - 0.05, concept
    assert concept["realised"] < concept["lower"], concept


def test_the_estimate_never_requests_a_retrain(loop):
    dag = load_dag("churn_monitoring")
    assert dag.get_task("estimate_performance").downstream_task_ids == set()


def test_version_without_reference_skips_with_its_reason(loop):
    old = loop["old"]
    assert old.state == "success", old.tasks
    assert old.tasks["estimate_performance"] == "skipped"
    assert old.tasks["check_performance"] == "success"  # the other checks are untouched
