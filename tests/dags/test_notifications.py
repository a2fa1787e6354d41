"""Notifications (docs/metrics.md, "Notifications"): the spec's section, validated; the DAG factories
wire it; in a real dag.test() run the notifier is called exactly when the deciding task's result
shows the event, with the project's FileNotifier writing what a person would read."""

from __future__ import annotations

import json

import pytest

from mlops_ops.config import SpecError, parse_pipeline_spec
from mlops_ops.notifiers import PipelineEventNotifier, event_callbacks
from mlops_ops.runner import run_dag
from tests.conftest import ROOT

# a task's result per event: one that shows it and one that does not
RESULTS = {
    "drift": (
        {
            "status": "drift",
            "drifted_columns": ["tenure"],
            "champion_version": "1",
            "prediction_drift": False,
        },
        {"status": "no_drift", "drifted_columns": [], "champion_version": "1", "prediction_drift": False},
    ),
    "degradation": (
        {"degraded": True, "metric": "roc_auc", "value": 0.61, "baseline": 0.8},
        {"degraded": False, "metric": "roc_auc", "value": 0.79, "baseline": 0.8},
    ),
    "rejection": (
        {"promote": False, "challenger_version": "3", "baseline_version": "2", "reasons": ["roc_auc worse"]},
        {"promote": False, "challenger_version": "2", "baseline_version": "2", "reasons": ["already"]},
    ),
    "rollback": (
        {"changed": True, "version": "1", "previous_version": "2"},
        {"changed": False, "version": "1", "previous_version": None},
    ),
}


def _spec(notifications: str):
    import yaml

    doc = yaml.safe_load((ROOT / "pipelines" / "churn.yaml").read_text().replace("${MLOPS_HOME}", "/tmp/h"))
    doc["notifications"] = yaml.safe_load(notifications)
    return parse_pipeline_spec(doc, origin="churn.yaml")


# a DAG file (dag.test() runs DAGs of the DAG folder's bundle): one task per result, each with the
# event's notifier as its on_success_callback
NOTIFY_DAG = """
import datetime as dt, json
from airflow.sdk import DAG, task
from mlops_ops.notifiers import FileNotifier, PipelineEventNotifier

with DAG("notify_events", schedule=None, start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)) as dag:
    for event, results in json.loads(RESULTS).items():
        for name, result in zip(("shows", "quiet"), results):
            notifier = FileNotifier(path=OUT, message="{{ mlops_event.summary }} ({{ ti.task_id }})")
            callback = PipelineEventNotifier(event=event, pipeline="churn", notifier=notifier)

            @task(task_id=f"{event}_{name}", on_success_callback=[callback])
            def decide(value: dict = result) -> dict:
                return value

            decide()
"""


@pytest.mark.slow
def test_events_are_told_only_when_the_result_shows_them(airflow_db, tmp_path):
    from tests.conftest import TEST_DAGS, load_dag

    out = tmp_path / "told" / "notifications.jsonl"
    dag_file = TEST_DAGS / "notify_events.py"
    dag_file.write_text(f"RESULTS = {json.dumps(json.dumps(RESULTS))}\nOUT = {str(out)!r}\n{NOTIFY_DAG}")
    try:
        run = run_dag(load_dag("notify_events"))
    finally:
        dag_file.unlink()
    assert run.state == "success", run.tasks
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted(x["task_id"] for x in lines) == sorted(f"{e}_shows" for e in RESULTS)
    told = {x["event"]: x["message"] for x in lines}
    assert told["drift"] == "churn: drift against champion v1 (drifted columns: tenure) (drift_shows)"
    assert told["degradation"].startswith("churn: the champion's roc_auc fell to 0.61 from 0.8")
    assert told["rejection"].startswith(
        "churn: the gate rejected v3; the champion stays v2. Reasons: roc_auc"
    )
    assert told["rollback"] == "churn: rolled back to v1 (was v2) (rollback_shows)"
    assert {x["pipeline"] for x in lines} == {"churn"}
    assert {x["run_id"] for x in lines} == {run.run_id}


def test_the_dag_factories_wire_the_chosen_events(tmp_path):
    from mlops_ops.dag_factory import build_pipeline_dags

    spec = _spec(
        "{events: [drift, rollback], notifier: mlops_ops.notifiers.FileNotifier, "
        f"args: {{path: '{tmp_path}/n.jsonl'}}}}"
    )
    dags = build_pipeline_dags(spec)

    def callbacks(dag_id: str, task_id: str) -> list:
        return [
            (cb.event, type(cb.notifier).__name__)
            for cb in dags[dag_id].get_task(task_id).on_success_callback or []
            if isinstance(cb, PipelineEventNotifier)
        ]

    assert callbacks("churn_monitoring", "detect_drift") == [("drift", "FileNotifier")]
    assert callbacks("churn_rollback", "rollback") == [("rollback", "FileNotifier")]
    assert callbacks("churn_monitoring", "check_performance") == []  # not chosen
    assert callbacks("churn_training", "evaluate") == []
    assert event_callbacks(_spec("{notifier: mlops_ops.notifiers.FileNotifier, args: {path: x}}"), "drift")


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("{notifier: mlops_ops.notifiers.FileNotifier, events: [drifts]}", "notifications.events"),
        ("{notifier: mlops_ops.notifiers.FileNotifier, events: []}", "notifications.events"),
        ("{notifier: 'not a path', args: {}}", "notifications.notifier"),
        ("{events: [drift]}", "notifications.notifier"),
        ("{notifier: mlops_ops.notifiers.FileNotifier, to: ops}", "notifications.to"),
    ],
)
def test_a_bad_section_names_the_field(section, message):
    with pytest.raises(SpecError, match=message.replace(".", r"\.")):
        _spec(section)


@pytest.mark.parametrize(
    ("notifier", "args", "message"),
    [
        ("mlops_ops.no_such_module.Notifier", "{}", "cannot import 'mlops_ops.no_such_module.Notifier'"),
        ("mlops_ops.notifiers.NoSuchNotifier", "{}", "cannot import"),
        ("mlops_ops.notifiers.Path", "{}", "is not a subclass of airflow.sdk.BaseNotifier"),
        ("mlops_ops.notifiers.FileNotifier", "{}", "notifications.args do not fit"),
        ("mlops_ops.notifiers.FileNotifier", "{path: x, channel: ops}", "notifications.args do not fit"),
    ],
)
def test_a_notifier_that_cannot_be_built_fails_the_spec_not_a_task(notifier, args, message):
    from mlops_ops.dag_factory import build_pipeline_dags

    spec = _spec(f"{{notifier: {notifier}, args: {args}}}")
    with pytest.raises(SpecError, match="pipeline 'churn'") as err:
        build_pipeline_dags(spec)
    assert message in str(err.value)


def test_mlops_ops_check_builds_the_notifier(tmp_path, capsys):
    from mlops_ops.cli import main

    spec = tmp_path / "churn.yaml"
    text = (ROOT / "pipelines" / "churn.yaml").read_text()
    spec.write_text(text + "\nnotifications: {notifier: mlops_ops.notifiers.FileNotifier, args: {path: x}}\n")
    assert main(["check", str(spec)]) == 0
    spec.write_text(text + "\nnotifications: {notifier: airflow.providers.nope.Notifier}\n")
    assert main(["check", str(spec)]) == 1
    out = capsys.readouterr().out
    assert f"FAIL {spec}: pipeline 'churn': notifications.notifier: cannot import" in out
