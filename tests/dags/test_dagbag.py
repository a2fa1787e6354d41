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
    assert set(bag.dag_ids) == {"churn_training", "example_existing_deployment"}


def test_training_dag_shape_schedule_and_trigger_form(monkeypatch):
    dag = _dagbag(ROOT / "pipelines", monkeypatch).dags["churn_training"]
    assert sorted(dag.task_ids) == sorted(TRAINING_TASKS)
    for upstream, downstream in zip(TRAINING_TASKS, TRAINING_TASKS[1:], strict=False):
        assert upstream in dag.get_task(downstream).upstream_task_ids, (upstream, downstream)
    assert dag.schedule == "@weekly" or str(dag.timetable.summary) == "@weekly"
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert {"reason", "force"} <= set(dag.params)
    assert dag.params["force"] is False
    assert {str(a.uri) for a in dag.get_task("ingest").outlets} == {"mlops://churn/dataset"}
    assert {str(a.uri) for a in dag.get_task("deploy").outlets} == {"mlops://churn/model"}
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
