"""Faults are classified: verdicts fail once naming the file and the fix, transient faults are retried.

Real MLflow (embedded SQLite, and an address where no server listens for the outage), real
storage on the local disk. The operator under test for the mapping is a minimal subclass of
MlopsBaseOperator whose ``execute`` raises the fault: the mapping is the base class's, shared by
every operator.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from mlops_ops import errors
from mlops_ops.core import data, registry, training
from mlops_ops.core.data import DataError as DataErrorFromData
from mlops_ops.errors import (
    DataError,
    MlflowUnavailableError,
    MlopsError,
    SnapshotIntegrityError,
    SpecError,
    StoredDocumentError,
    TransientError,
)
from mlops_ops.hooks.mlflow import MlflowHook
from mlops_ops.operators.base import MlopsBaseOperator


class _Raising(MlopsBaseOperator):
    def __init__(self, *, fault: BaseException, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fault = fault

    def execute(self, context: Any) -> Any:
        raise self.fault


def _run(fault: BaseException) -> None:
    _Raising(task_id="t", pipeline="churn", fault=fault).execute({})


def test_one_hierarchy_data_and_spec_problems_are_value_errors():
    assert DataErrorFromData is DataError
    for cls in (
        DataError,
        SpecError,
        SnapshotIntegrityError,
        StoredDocumentError,
        errors.ModelError,
        registry.LedgerError,
        registry.PromotionRefusedError,
        registry.RollbackRefusedError,
        training.TrainingError,
    ):
        assert issubclass(cls, MlopsError), cls
        assert issubclass(cls, ValueError), cls
        assert errors.is_verdict(cls("x"))
    assert issubclass(MlflowUnavailableError, TransientError)
    assert not errors.is_verdict(MlflowUnavailableError("down"))
    assert not issubclass(MlflowUnavailableError, ValueError)


def _mlflow_error(code: str, message: str, *, rest: bool = False) -> Exception:
    """A real MLflow exception with ``code``, as its client raises it (no server needed to build one)."""
    from mlflow.exceptions import MlflowException, RestException

    if rest:
        return RestException({"error_code": code, "message": message})
    from mlflow.protos import databricks_pb2

    return MlflowException(message, error_code=getattr(databricks_pb2, code))


def _requests_json_error() -> Exception:
    """What ``response.json()`` raises on a proxy's HTML error page: a ValueError and an OSError."""
    import requests

    return requests.exceptions.JSONDecodeError("Expecting value", "<html>502 Bad Gateway</html>", 0)


@pytest.mark.parametrize(
    "fault",
    [
        DataError("churn.csv: column 'x' is text; fix the source"),
        SnapshotIntegrityError("snapshot s failed its integrity check; re-ingest"),
        registry.LedgerError("ledger damaged"),
        ValueError("a library's complaint about the input"),
        json.JSONDecodeError("Expecting value", "{", 1),
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
        _mlflow_error("INVALID_PARAMETER_VALUE", "Metric name 'mmm…' exceeds the maximum length 250"),
        _mlflow_error("INVALID_PARAMETER_VALUE", "Invalid tag name", rest=True),
        _mlflow_error("MALFORMED_REQUEST", "Malformed request"),
    ],
    ids=[
        "data",
        "snapshot",
        "ledger",
        "plain-value-error",
        "json",
        "unicode",
        "mlflow-invalid-value",
        "mlflow-rest-invalid-value",
        "mlflow-malformed",
    ],
)
def test_a_verdict_fails_the_task_once_with_its_message(fault):
    with pytest.raises(AirflowFailException) as err:
        _run(fault)
    assert str(fault) in str(err.value)
    assert "pipeline 'churn'" in str(err.value)


@pytest.mark.parametrize(
    "fault",
    [
        MlflowUnavailableError("MLflow at http://x did not answer"),
        ConnectionError("connection reset"),
        TimeoutError("storage timed out"),
        OSError(5, "Input/output error"),
        RuntimeError("something else"),
        _requests_json_error(),
        _mlflow_error("TEMPORARILY_UNAVAILABLE", "503 Service Unavailable", rest=True),
        _mlflow_error("INTERNAL_ERROR", "API request failed: Max retries exceeded"),
        _mlflow_error("RESOURCE_DOES_NOT_EXIST", "Registered model 'x' not found"),
    ],
    ids=[
        "mlflow-down",
        "connection",
        "timeout",
        "io",
        "runtime",
        "json-reply-over-the-network",
        "mlflow-503",
        "mlflow-internal",
        "mlflow-not-found",
    ],
)
def test_a_transient_fault_propagates_for_airflows_retries(fault):
    with pytest.raises(type(fault)):
        _run(fault)


def test_airflow_outcomes_pass_through_unchanged():
    with pytest.raises(AirflowSkipException, match="nothing to do"):
        _run(AirflowSkipException("nothing to do"))


def test_every_operator_maps_verdicts_through_the_base_class():
    import mlops_ops.operators as ops

    classes = [c for c in vars(ops).values() if isinstance(c, type) and issubclass(c, MlopsBaseOperator)]
    assert len(classes) >= 10
    for cls in classes:
        assert getattr(cls.execute, "__mlops_verdicts__", False), cls.__name__


# -- stored documents: only "not found" is absent -----------------------------------------------


def _run_with_artifact(hook: MlflowHook, name: str, text: str | None) -> str:
    run = hook.client.create_run(hook.ensure_experiment("churn"))
    if text is not None:
        hook.client.log_text(run.info.run_id, text, name)
    return run.info.run_id


def test_a_missing_artifact_is_absent_and_a_damaged_one_is_a_verdict_naming_it(mlops_home):
    hook = MlflowHook()
    assert hook.load_dict(_run_with_artifact(hook, "profile.json", None), "profile.json") is None
    assert hook.load_dict(_run_with_artifact(hook, "profile.json", '{"a": 1}'), "profile.json") == {"a": 1}
    for text in ('{"a": ', "[1, 2]", "\ufeff{not json"):
        run_id = _run_with_artifact(hook, "profile.json", text)
        with pytest.raises(StoredDocumentError) as err:
            hook.load_dict(run_id, "profile.json")
        assert "profile.json" in str(err.value)
        assert run_id in str(err.value)
        assert "retrain" in str(err.value)


def test_a_stored_document_without_what_its_readers_need_is_a_verdict_naming_it(mlops_home):
    from mlops_ops.core.drift import ReferenceProfile

    hook = MlflowHook()
    run_id = _run_with_artifact(hook, "training_spec.json", '{"task": "classification"}')
    with pytest.raises(StoredDocumentError, match=r"training_spec.json of run .* has no \['features'\]"):
        hook.load_dict(run_id, "training_spec.json", required=("features", "task"))
    for doc in ({"version": 1}, {"version": 1, "rows": 3, "numeric": {"a": {"nope": 1}}}, {"version": 99}):
        with pytest.raises(StoredDocumentError, match="reference_profile.json of champion v1"):
            errors.parse_stored(
                "reference_profile.json of champion v1", ReferenceProfile.from_dict, doc, "retrain it"
            )


def test_an_mlflow_outage_is_not_read_as_a_missing_document(mlops_home):
    """Nothing listens on port 9: reading the champion's profile must fail (retried), not be None."""
    hook = MlflowHook()
    run_id = _run_with_artifact(hook, "profile.json", '{"a": 1}')
    down = MlflowHook()
    down.__dict__["_configured_tracking_uri"] = "http://127.0.0.1:9"
    with pytest.raises(Exception) as err:  # noqa: PT011 - whatever the client raises; never None
        down.load_dict(run_id, "profile.json")
    assert not errors.is_verdict(err.value) or "RESOURCE_DOES_NOT_EXIST" not in str(err.value)
    with pytest.raises(MlflowUnavailableError):  # an outage is not "no versions"
        down.find_versions("churn", {"mlops.snapshot_sha256": "x"})


def test_an_estimator_that_cannot_predict_fails_scoring_once(mlops_home, monkeypatch, tmp_path):
    """A model without predict (AttributeError) is a verdict naming the version, not a retried crash."""
    from mlops_ops.artifacts import TrainingSpec
    from mlops_ops.operators.score import BatchScoreOperator

    op = BatchScoreOperator(task_id="score", pipeline="churn", snapshot="file:///x", model="1")
    frame = data.normalise(__import__("pandas").DataFrame({"a": [1.0, 2.0]}))
    snapshot_file = tmp_path / "data.parquet"  # scoring streams the verified snapshot file
    frame.to_parquet(snapshot_file, index=False)
    monkeypatch.setattr(
        BatchScoreOperator,
        "_training_spec",
        lambda self, hook, version: (
            TrainingSpec.from_dict({"features": {"numeric": ["a"], "categorical": []}, "task": "regression"}),
            None,
        ),
    )
    monkeypatch.setattr(
        BatchScoreOperator, "_verified_snapshot", lambda self: (snapshot_file, {"sha256": "ab" * 32})
    )
    monkeypatch.setattr(MlflowHook, "load_sklearn_model", lambda self, uri: object())
    context = {
        "ti": SimpleNamespace(dag_id="d", run_id="r", task_id="score"),
        "outlet_events": defaultdict(SimpleNamespace),
    }
    with pytest.raises(AirflowFailException, match="churn v1 cannot score snapshot abababababab"):
        op.execute(context)


def test_columns_in_another_order_name_what_differs():
    a = __import__("pandas").DataFrame({"x": [1], "y": [2], "z": [3]})
    b = a[["x", "z", "y"]]
    with pytest.raises(DataError) as err:
        data.combine([("day1.csv", a), ("day2.csv", b)])
    message = str(err.value)
    assert "missing []" not in message
    assert "another order" in message
    assert "column 2 is 'z', expected 'y'" in message
    c = a.rename(columns={"z": "w"})
    with pytest.raises(DataError, match=r"missing \['z'\], extra \['w'\]"):
        data.combine([("day1.csv", a), ("day3.csv", c)])


def test_errors_module_is_pure():
    assert "airflow" not in sys.modules["mlops_ops.errors"].__dict__
