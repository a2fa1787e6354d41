"""What a person reads in the Airflow and MLflow UIs: skip reasons in the visible part of the task log,
MLflow runs with names of their own, experiments that MLflow 3 opens as model development."""

from __future__ import annotations

import datetime as dt
import re
from types import SimpleNamespace

import pytest

from tests.conftest import ROOT


def _operator():
    from mlops_ops.operators.deploy import DeployModelOperator

    return DeployModelOperator(task_id="deploy", pipeline="churn", decision={})


def test_a_skip_writes_its_reason_to_the_log_before_airflow_folds_it_away(capsys):
    from airflow.sdk.exceptions import AirflowSkipException

    op = _operator()
    with pytest.raises(AirflowSkipException, match="gate rejected v2"):
        op.skip("gate rejected v2")
    out = capsys.readouterr().out  # the task SDK's structlog writes the task log to stdout
    assert re.search(r"\[info\s*\] Skipped: gate rejected v2", out), out


def test_every_skip_of_the_library_goes_through_skip():
    """Airflow logs an AirflowSkipException's message inside the collapsed "Post Execute" group;
    raising it anywhere but ``MlopsBaseOperator.skip`` would hide the reason again."""
    raised = []
    for path in (ROOT / "mlops_ops").rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"raise AirflowSkipException\(", line):
                raised.append(f"{path.relative_to(ROOT)}:{number}")
    assert raised == ["mlops_ops/operators/base.py:" + raised[0].split(":")[1]], raised
    assert len(raised) == 1


def _context(run_after: dt.datetime, try_number: int = 1) -> dict:
    return {
        "ds": "2026-03-01",
        "dag_run": SimpleNamespace(run_after=run_after),
        "ti": SimpleNamespace(try_number=try_number),
    }


def test_runs_of_one_day_get_different_mlflow_run_names():
    from mlops_ops.operators.base import MlopsBaseOperator

    name = MlopsBaseOperator.run_name
    scheduled = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    manual = dt.datetime(2026, 3, 1, 14, 5, 9, tzinfo=dt.UTC)
    names = {
        name(_context(scheduled), "drift"),
        name(_context(manual), "drift"),
        name(_context(manual, try_number=2), "drift"),
        name(_context(manual), "train", "ab12cd34"),
        name(_context(scheduled), "train", "ab12cd34"),
    }
    assert len(names) == 5
    assert name(_context(manual, 2), "train", "ab12cd34") == "train-2026-03-01-ab12cd34-140509-try2"


@pytest.mark.slow
def test_experiments_open_as_model_development_in_mlflow_3(tmp_path, monkeypatch):
    """Real MLflow on SQLite: a new experiment gets the kind, an existing one without it too."""
    from mlflow import MlflowClient

    from mlops_ops.hooks.mlflow import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, MlflowHook

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    client = MlflowClient(tracking_uri=uri)
    older = client.create_experiment("older", artifact_location=(tmp_path / "a").as_uri())
    other = client.create_experiment(
        "genai", artifact_location=(tmp_path / "b").as_uri(), tags={EXPERIMENT_KIND_TAG: "genai_development"}
    )
    hook = MlflowHook()
    new = hook.ensure_experiment("churn")
    assert hook.ensure_experiment("older") == older
    assert hook.ensure_experiment("genai") == other
    kinds = {e: client.get_experiment(e).tags.get(EXPERIMENT_KIND_TAG) for e in (new, older, other)}
    assert kinds == {new: EXPERIMENT_KIND, older: EXPERIMENT_KIND, other: "genai_development"}
