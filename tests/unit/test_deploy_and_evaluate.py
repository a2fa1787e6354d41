"""DeployModelOperator and EvaluateModelOperator edge cases, against a real MLflow (SQLite).

These call execute() directly with a minimal task context (the task instance's ids and the
outlet-event accessor): the situations (a retry after a half-finished promotion) cannot be
produced through dag.test(). Everything else is real: MLflow store, registry, storage.
"""

from __future__ import annotations

import json
from collections import defaultdict
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from mlops_ops.core.data import resolve_features
from mlops_ops.core.drift import build_reference_profile
from mlops_ops.core.training import train_model
from mlops_ops.example.churn import generate
from mlops_ops.hooks import storage as storage_mod
from mlops_ops.hooks.mlflow import MlflowHook
from mlops_ops.operators import DeployModelOperator

# trains and logs models to a real MLflow store
pytestmark = pytest.mark.slow


class _TI(SimpleNamespace):
    def xcom_push(self, key, value):
        self.pushed[key] = value


def _context(run_id="manual__1"):
    return {
        "ti": _TI(dag_id="d", run_id=run_id, task_id="deploy", pushed={}),
        "outlet_events": defaultdict(SimpleNamespace),
    }


def _register(seed: int) -> str:
    frame = generate(400, seed=seed)
    feats = resolve_features(frame, "churned", None, None)
    result = train_model(
        frame,
        target="churned",
        features=feats,
        estimator="sklearn.linear_model.LogisticRegression",
        params={"max_iter": 200},
    )
    logged = MlflowHook().log_training_run(
        experiment="churn",
        model_name="churn",
        model=result.model,
        params={},
        metrics=result.metrics,
        tags={"mlops.pipeline": "churn"},
        dataset=frame,
        dataset_source="test",
        dataset_name="t",
        target="churned",
        input_example=result.input_example,
        signature_output=result.predictions_example,
        artifacts={"reference_profile.json": build_reference_profile(frame).to_dict()},
    )
    return logged["version"]


def _decision(version, baseline, promote=True):
    return {
        "promote": promote,
        "status": "promote" if promote else "reject",
        "challenger_version": version,
        "baseline_version": baseline,
        "reasons": ["test"],
        "metrics": {},
        "champion_metrics": None,
        "report_uri": None,
    }


def _ledger(home):
    return sorted((home / "storage" / "churn" / "deployments").glob("*.json"))


@pytest.fixture
def home(mlflow_store):
    return mlflow_store


def test_a_retry_after_the_alias_moved_completes_the_promotion_once(home, monkeypatch):
    v1 = _register(0)
    op = DeployModelOperator(task_id="deploy", pipeline="churn", decision=_decision(v1, None))

    def broken_write(path, data):
        raise OSError("storage went away")

    with monkeypatch.context() as mp:
        mp.setattr(storage_mod, "write_once", broken_write)
        with pytest.raises(OSError, match="storage went away"):  # not a verdict: Airflow retries it
            op.execute(_context())
    assert str(MlflowHook().get_alias_version("churn").version) == v1  # the alias had moved
    assert _ledger(home) == []

    retry = DeployModelOperator(task_id="deploy", pipeline="churn", decision=_decision(v1, None))
    result = retry.execute(_context())  # the retry finishes the job instead of failing the CAS
    assert result["version"] == v1
    assert len(_ledger(home)) == 1
    again = DeployModelOperator(task_id="deploy", pipeline="churn", decision=_decision(v1, None)).execute(
        _context()
    )
    assert again["ledger_uri"] == result["ledger_uri"]  # no second record for the same run
    assert len(_ledger(home)) == 1


def test_promotion_is_refused_when_the_champion_moved_since_evaluation(home):
    v1, v2, v3 = _register(0), _register(1), _register(2)
    DeployModelOperator(task_id="deploy", pipeline="churn", decision=_decision(v1, None)).execute(
        _context("r1")
    )
    DeployModelOperator(task_id="deploy", pipeline="churn", decision=_decision(v2, v1)).execute(
        _context("r2")
    )
    stale = DeployModelOperator(task_id="deploy", pipeline="churn", decision=_decision(v3, v1))
    with pytest.raises(
        AirflowFailException, match="champion changed since evaluation: expected v1, found v2"
    ):
        stale.execute(_context("r3"))
    assert str(MlflowHook().get_alias_version("churn").version) == v2
    records = [json.loads(p.read_text()) for p in _ledger(home)]
    assert [(r["version"], r["previous_version"]) for r in records] == [(v1, None), (v2, v1)]


def test_a_rejected_decision_skips_and_changes_nothing(home):
    v1 = _register(0)
    op = DeployModelOperator(task_id="deploy", pipeline="churn", decision=_decision(v1, None, promote=False))
    with pytest.raises(AirflowSkipException, match="gate rejected churn v1"):
        op.execute(_context())
    assert MlflowHook().get_alias_version("churn") is None
    assert _ledger(home) == []


def test_the_model_asset_event_carries_the_version(home):
    v1 = _register(0)
    ctx = _context()
    op = DeployModelOperator(task_id="deploy", pipeline="churn", decision=_decision(v1, None))
    op.execute(ctx)
    (asset,) = op.outlets
    assert ctx["outlet_events"][asset].extra == {"version": v1}
