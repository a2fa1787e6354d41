"""Every DAG file in dags/ loads; a broken spec fails at parse time naming the file and the field."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import ROOT

TRAINING_TASKS = ["ingest", "validate", "train", "evaluate", "deploy"]


def _dagbag(pipelines, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("MLOPS_PIPELINES", str(pipelines))
    return DagBag(dag_folder=str(ROOT / "dags"), safe_mode=True)


def test_every_dag_in_dags_loads_without_import_errors(monkeypatch):
    bag = _dagbag(ROOT / "pipelines", monkeypatch)
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {
        "churn_training",
        "churn_monitoring",
        "churn_batch_scoring",
        "churn_rollback",
        "example_existing_deployment",
    }


def test_training_dag_shape_schedule_and_trigger_form(monkeypatch):
    dag = _dagbag(ROOT / "pipelines", monkeypatch).dags["churn_training"]
    assert sorted(dag.task_ids) == sorted(TRAINING_TASKS)
    for upstream, downstream in zip(TRAINING_TASKS, TRAINING_TASKS[1:], strict=False):
        assert upstream in dag.get_task(downstream).upstream_task_ids, (upstream, downstream)
    # its cron OR a retrain request from monitoring
    timetable = dag.timetable
    assert type(timetable).__name__ == "AssetOrTimeSchedule"
    assert timetable.timetable.expression == "0 0 * * 0"  # @weekly
    assert "x-mlops://churn/retrain" in str(timetable.asset_condition)
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert {"reason", "force"} <= set(dag.params)
    assert dag.params["force"] is False
    assert {str(a.uri) for a in dag.get_task("ingest").outlets} == {"x-mlops://churn/dataset"}
    assert {str(a.uri) for a in dag.get_task("deploy").outlets} == {"x-mlops://churn/model"}
    assert dag.doc_md
    assert "gate" in dag.doc_md


def test_a_broken_spec_fails_at_parse_time_naming_file_and_field(tmp_path, monkeypatch):
    shutil.copy(ROOT / "pipelines" / "churn.yaml", tmp_path)
    (tmp_path / "fraud.yaml").write_text(
        "name: fraud\nsource: {uri: /data/*.csv}\ntarget: is_fraud\n"
        "model: {estimator: sklearn.linear_model.LogisticRegression, holdout_fraction: 1.5}\n"
        "evaluation: {primary_metric: auc}\n"
    )
    bag = _dagbag(tmp_path, monkeypatch)
    assert len(bag.import_errors) == 1
    message = next(iter(bag.import_errors.values()))
    assert "fraud.yaml" in message
    assert "model.holdout_fraction" in message
    assert "evaluation" in message
    assert "unknown metric" in message
    assert "auc" in message


@pytest.mark.parametrize("dag_file", sorted(p.name for p in (ROOT / "dags").glob("*.py")))
def test_dag_files_mention_airflow_and_dag_for_the_safe_mode_heuristic(dag_file):
    text = (ROOT / "dags" / dag_file).read_text().lower()
    assert "airflow" in text
    assert "dag" in text


def test_monitoring_dag_shape_and_schedule(monkeypatch):
    dag = _dagbag(ROOT / "pipelines", monkeypatch).dags["churn_monitoring"]
    assert set(dag.task_ids) == {
        "ingest_batch",
        "validate_batch",
        "detect_drift",
        "check_performance",
        "estimate_performance",
        "detect_attribution_drift",
        "request_retrain",
        "ingest_outcomes",  # monitoring.feedback
        "join_outcomes",
    }
    # attribution drift is reported, it does not feed the retrain request
    assert dag.get_task("detect_attribution_drift").downstream_task_ids == set()
    assert dag.get_task("detect_drift").upstream_task_ids == {"validate_batch", "ingest_batch"}
    assert dag.get_task("join_outcomes").upstream_task_ids == {"ingest_outcomes"}
    performance = dag.get_task("check_performance")
    assert performance.upstream_task_ids == {"validate_batch", "ingest_batch", "join_outcomes"}
    assert performance.use_outcomes is True
    assert performance.outcome_days == 14
    assert dag.get_task("ingest_outcomes").skip_when_empty is True
    assert "join_outcomes" in dag.doc_md
    assert dag.get_task("request_retrain").upstream_task_ids == {"detect_drift", "check_performance"}
    assert dag.get_task("estimate_performance").downstream_task_ids == set()  # never requests a retrain
    assert {str(a.uri) for a in dag.get_task("request_retrain").outlets} == {"x-mlops://churn/retrain"}
    assert dag.get_task("ingest_batch").outlets == []  # a batch is not the training dataset
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    assert dag.doc_md
