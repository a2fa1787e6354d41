"""Every registered version is gated or marked: idempotent registration, no skipped gate, safe names.

The real operators (ingest, train, evaluate, deploy) run with ``execute()`` and a minimal task
context on the embedded MLflow (SQLite) and the local disk. A worker killed right after MLflow
registered a version is simulated by letting MLflow's ``_create_model_version`` (what
``mlflow.register_model`` calls) create the version without its tags and then raising a
BaseException, as a SIGKILL would stop the task there (the one thing patched here).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from airflow.sdk.exceptions import AirflowSkipException

from mlops_ops.core.naming import MAX_KEY_LENGTH, mlflow_key, mlflow_keys
from mlops_ops.example.churn import generate
from mlops_ops.operators.deploy import DeployModelOperator
from mlops_ops.operators.evaluate import EvaluateModelOperator
from mlops_ops.operators.ingest import IngestDatasetOperator
from mlops_ops.operators.train import TrainModelOperator
from tests.conftest import champion_version, mlflow_client, version_count

NUMERIC = ["tenure_months", "monthly_charges", "support_calls", "data_usage_gb"]
CATEGORICAL = ["contract", "region", "payment_method"]
EVALUATION = {"primary_metric": "roc_auc", "thresholds": {"roc_auc": {"lower": 0.6}}}


class _TI(SimpleNamespace):
    def xcom_push(self, key, value):
        self.pushed[key] = value


def _context(run_id: str, task_id: str) -> dict:
    return {
        "ti": _TI(dag_id="churn_training", run_id=run_id, task_id=task_id, pushed={}),
        "outlet_events": defaultdict(SimpleNamespace),
        "logical_date": None,
    }


class _Killed(BaseException):
    """What a SIGKILL does to the task: nothing after this point runs."""


def _source(home: Path, frame=None) -> Path:
    path = home / "data" / "churn.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    (generate(1200, seed=5) if frame is None else frame).to_parquet(path, index=False)
    return path


def _ingest(source: Path, run_id: str) -> dict:
    op = IngestDatasetOperator(task_id="ingest", pipeline="churn", source_uri=str(source))
    return op.execute(_context(run_id, "ingest"))


def _train(snapshot: dict, run_id: str, *, numeric=None, categorical=None, force=False) -> dict:
    op = TrainModelOperator(
        task_id="train",
        pipeline="churn",
        snapshot=snapshot,
        target="churned",
        estimator="sklearn.linear_model.LogisticRegression",
        estimator_params={"max_iter": 300},
        numeric_features=numeric or NUMERIC,
        categorical_features=categorical or CATEGORICAL,
        force=force,
    )
    return op.execute(_context(run_id, "train"))


def _evaluate(model: dict, run_id: str) -> dict:
    op = EvaluateModelOperator(task_id="evaluate", pipeline="churn", model=model, evaluation=EVALUATION)
    return op.execute(_context(run_id, "evaluate"))


def _deploy(decision: dict, run_id: str) -> dict:
    op = DeployModelOperator(task_id="deploy", pipeline="churn", decision=decision)
    return op.execute(_context(run_id, "deploy"))


def _kill_after_register(monkeypatch):
    """MLflow registers the version (without the tags the caller asked for), then the task dies."""
    from mlflow import MlflowClient

    real = MlflowClient._create_model_version

    def create_then_die(self, *args, **kwargs):
        kwargs.pop("tags", None)
        real(self, *args, **kwargs)
        raise _Killed()

    monkeypatch.setattr(MlflowClient, "_create_model_version", create_then_die)


@pytest.mark.parametrize("force", [False, True], ids=["scheduled", "forced"])
def test_a_retry_after_a_kill_right_after_registering_finds_its_version(mlops_home, force):
    snapshot = _ingest(_source(mlops_home), "manual__1")
    with pytest.MonkeyPatch.context() as patch:
        _kill_after_register(patch)
        with pytest.raises(_Killed):
            _train(snapshot, "manual__1", force=force)
    client = mlflow_client()
    assert version_count(client) == 1
    assert "mlops.snapshot_sha256" not in client.get_model_version("churn", "1").tags  # half-registered

    retried = _train(snapshot, "manual__1", force=force)  # the same task instance, next attempt
    assert retried["version"] == "1"
    assert retried.get("existing") is True
    assert version_count(client) == 1, "no duplicate version"
    tags = client.get_model_version("churn", "1").tags
    assert tags["mlops.snapshot_sha256"] == snapshot["sha256"]
    assert tags["airflow.run_id"] == "manual__1"
    assert tags["mlops.run_id"] == retried["run_id"]
    # and the version gets gated
    decision = _evaluate(retried, "manual__1")
    assert client.get_model_version("churn", "1").tags["mlops.gate"] == decision["status"]


def test_a_version_whose_evaluation_never_ran_is_gated_by_the_next_run(mlops_home):
    snapshot = _ingest(_source(mlops_home), "scheduled__1")
    first = _train(snapshot, "scheduled__1")
    # evaluate crashed (or the worker died) before deciding: no mlops.gate tag
    client = mlflow_client()
    assert "mlops.gate" not in client.get_model_version("churn", first["version"]).tags

    second = _train(_ingest(_source(mlops_home), "scheduled__2"), "scheduled__2")
    assert second["version"] == first["version"]
    assert second["existing"] is True
    assert version_count(client) == 1
    decision = _evaluate(second, "scheduled__2")
    assert decision["status"] == "promote"
    _deploy(decision, "scheduled__2")
    assert champion_version(client) == first["version"]

    # now gated: the next run has nothing new to learn
    with pytest.raises(AirflowSkipException, match="gate: promote"):
        _train(snapshot, "scheduled__3")


@pytest.mark.parametrize(
    "names",
    [
        ["x" * 240],
        ["f" * 300, "f" * 299 + "g"],  # long, and the same once cut to MLflow's length
        ["a b?", "a b_", "a/../b", "/lead"],  # unsafe characters, and a name they clean up to
        ["Umsatz (€)", "Umsatz (£)", "温度"],
    ],
    ids=["240-chars", "long-colliding", "unsafe-colliding", "non-ascii"],
)
def test_feature_names_become_distinct_valid_mlflow_keys(names):
    from mlflow.utils.validation import _validate_metric_name

    keys = mlflow_keys("importance.", names)
    assert len(set(keys.values())) == len(names)
    for key in keys.values():
        assert len(key) <= MAX_KEY_LENGTH
        _validate_metric_name(key)
    assert mlflow_key("importance.", "tenure_months") == "importance.tenure_months"  # kept as it is


def test_a_240_character_feature_name_is_trained_gated_and_promoted(mlops_home):
    long_name = "customer_" + "monthly_support_interaction_" * 8 + "count"
    long_name = long_name[:240]
    other = long_name[:-1] + "?"  # cleans up to a name that differs only in its last character
    frame = generate(1200, seed=5)
    rng = np.random.default_rng(0)
    frame[long_name] = frame["support_calls"] + rng.normal(0, 0.1, len(frame))
    frame[other] = rng.normal(size=len(frame))
    snapshot = _ingest(_source(mlops_home, frame), "manual__long")
    model = _train(snapshot, "manual__long", numeric=[*NUMERIC, long_name, other])
    decision = _evaluate(model, "manual__long")
    assert decision["status"] == "promote", decision["reasons"]
    _deploy(decision, "manual__long")
    client = mlflow_client()
    assert champion_version(client) == model["version"]
    assert client.get_model_version("churn", model["version"]).tags["mlops.gate"] == "promote"
    metrics = client.get_run(model["run_id"]).data.metrics
    importance = [k for k in metrics if k.startswith("importance.")]
    assert len(importance) == len(NUMERIC) + 2 + len(CATEGORICAL)
    assert all(len(k) <= MAX_KEY_LENGTH for k in importance)
