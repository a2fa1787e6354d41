"""The metrics module: settings from the environment, the metrics of each decision, and a push that
never changes a task's outcome (docs/metrics.md). The push to a real Pushgateway is tested in
tests/integration/test_prometheus.py."""

from __future__ import annotations

import logging
import math
import socket
import types

import pytest
from prometheus_client import generate_latest

from mlops_ops.hooks.pushgateway import (
    BUILDERS,
    PushgatewaySettings,
    build_registry,
    grouping_key,
    push_metrics,
)

# a task instance's identity: all push_metrics reads of the Airflow context
CONTEXT = {"ti": types.SimpleNamespace(dag_id="churn_monitoring", task_id="detect_drift")}

DOCUMENTS = {
    "ingest": {"rows": 4200},
    "validation": {"errors": 2, "warnings": 3},
    "drift": {
        "status": "drift",
        "drifted_share": 0.5,
        "rows": 300,
        "prediction_drift": True,
        "columns": [
            {"name": "tenure", "test": "ks", "effect": 0.31, "effect_threshold": 0.1, "drifted": True},
            {"name": "region", "test": "chi2", "effect": None, "effect_threshold": 0.05, "drifted": False},
        ],
    },
    "performance": {"metric": "roc_auc", "value": 0.71, "baseline": 0.8, "degraded": True, "rows": 250},
    "estimate": {
        "metric": "roc_auc",
        "estimate": 0.74,
        "lower": 0.7,
        "upper": 0.78,
        "reference": 0.8,
        "status": "estimated_drop",
        "rows": 300,
    },
    "gate": {"promote": False, "challenger_version": "3", "baseline_version": "2"},
    "champion": {"version": "2", "action": "rollback"},
    "retrain": {"retrain": True},
}


def _samples(kind: str, document: dict) -> dict[str, float]:
    text = generate_latest(build_registry(kind, document, now=1000.0)).decode()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return {name: float(value) for name, value in (line.rsplit(" ", 1) for line in lines)}


def test_unset_url_means_metrics_are_off(monkeypatch):
    monkeypatch.delenv("MLOPS_PUSHGATEWAY_URL", raising=False)
    assert PushgatewaySettings.from_env() is None
    assert push_metrics("ingest", "churn", CONTEXT, {"rows": 1}) is False


def test_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("MLOPS_PUSHGATEWAY_URL", "http://gateway:9091")
    monkeypatch.setenv("MLOPS_PUSHGATEWAY_JOB", "ml_platform")
    monkeypatch.setenv("MLOPS_PUSHGATEWAY_TIMEOUT", "2.5")
    settings = PushgatewaySettings.from_env()
    assert settings is not None
    assert (str(settings.url), settings.job, settings.timeout) == ("http://gateway:9091/", "ml_platform", 2.5)


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("MLOPS_PUSHGATEWAY_URL", "gateway:9091", "MLOPS_PUSHGATEWAY_URL='gateway:9091'"),
        ("MLOPS_PUSHGATEWAY_URL", "ftp://gateway", "MLOPS_PUSHGATEWAY_URL='ftp://gateway'"),
        ("MLOPS_PUSHGATEWAY_JOB", "ml platform", "MLOPS_PUSHGATEWAY_JOB='ml platform'"),
        ("MLOPS_PUSHGATEWAY_TIMEOUT", "0", "MLOPS_PUSHGATEWAY_TIMEOUT='0'"),
        ("MLOPS_PUSHGATEWAY_TIMEOUT", "soon", "MLOPS_PUSHGATEWAY_TIMEOUT='soon'"),
    ],
)
def test_an_invalid_setting_names_the_variable_and_the_fix(monkeypatch, variable, value, named):
    monkeypatch.setenv("MLOPS_PUSHGATEWAY_URL", "http://gateway:9091")
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match="invalid Pushgateway setting") as err:
        PushgatewaySettings.from_env()
    assert named in str(err.value)
    assert "http://host:9091" in str(err.value)


def test_credentials_in_the_url_are_refused(monkeypatch):
    monkeypatch.setenv("MLOPS_PUSHGATEWAY_URL", "http://user:secret@gateway:9091")
    with pytest.raises(ValueError, match="credentials") as err:
        PushgatewaySettings.from_env()
    assert "secret" not in str(err.value)


def test_every_kind_has_its_metrics():
    assert set(BUILDERS) == set(DOCUMENTS)
    assert _samples("ingest", DOCUMENTS["ingest"]) == {
        "mlops_ingest_rows": 4200,
        "mlops_ingest_last_success_timestamp_seconds": 1000,
    }
    validation = _samples("validation", DOCUMENTS["validation"])
    assert validation['mlops_validation_failures{severity="error"}'] == 2
    assert validation['mlops_validation_failures{severity="warning"}'] == 3
    drift = _samples("drift", DOCUMENTS["drift"])
    assert drift["mlops_drift_detected"] == 1
    assert drift['mlops_drift_status{status="drift"}'] == 1
    assert drift['mlops_drift_status{status="no_drift"}'] == 0
    assert drift['mlops_drift_effect{column="tenure",test="ks"}'] == 0.31
    assert math.isnan(drift['mlops_drift_effect{column="region",test="chi2"}'])  # untested: NaN
    assert drift['mlops_drift_column_drifted{column="region"}'] == 0
    assert drift["mlops_drift_prediction_detected"] == 1
    assert drift['mlops_monitoring_last_success_timestamp_seconds{check="drift"}'] == 1000
    performance = _samples("performance", DOCUMENTS["performance"])
    assert performance['mlops_performance_value{metric="roc_auc"}'] == 0.71
    assert performance['mlops_performance_baseline{metric="roc_auc"}'] == 0.8
    assert performance["mlops_performance_degraded"] == 1
    unlabelled = _samples("performance", {"metric": "roc_auc", "value": None, "baseline": 0.8, "rows": 0})
    assert math.isnan(unlabelled['mlops_performance_value{metric="roc_auc"}'])  # replaces an older value
    estimate = _samples("estimate", DOCUMENTS["estimate"])
    assert estimate['mlops_estimate_value{metric="roc_auc"}'] == 0.74
    assert estimate['mlops_estimate_lower{metric="roc_auc"}'] == 0.7
    assert estimate['mlops_estimate_upper{metric="roc_auc"}'] == 0.78
    assert estimate["mlops_estimate_drop"] == 1
    assert estimate["mlops_estimate_rows"] == 300
    gate = _samples("gate", DOCUMENTS["gate"])
    assert gate["mlops_gate_promote"] == 0
    assert gate["mlops_gate_last_rejection_timestamp_seconds"] == 1000
    assert "mlops_gate_last_promotion_timestamp_seconds" not in gate
    champion = _samples("champion", DOCUMENTS["champion"])
    assert champion["mlops_champion_version"] == 2
    assert champion["mlops_champion_last_rollback_timestamp_seconds"] == 1000
    assert _samples("retrain", DOCUMENTS["retrain"])["mlops_retrain_last_request_timestamp_seconds"] == 1000
    assert "mlops_retrain_last_request_timestamp_seconds" not in _samples("retrain", {"retrain": False})


def test_a_challenger_that_already_serves_is_no_rejection():
    gate = _samples("gate", {"promote": False, "challenger_version": "2", "baseline_version": "2"})
    assert gate["mlops_gate_promote"] == 0
    assert "mlops_gate_last_rejection_timestamp_seconds" not in gate


def test_one_group_per_task_and_one_for_the_champion():
    assert grouping_key("drift", "churn", CONTEXT) == {
        "pipeline": "churn",
        "dag_id": "churn_monitoring",
        "task_id": "detect_drift",
    }
    assert grouping_key("champion", "churn", CONTEXT) == {"pipeline": "churn", "alias": "champion"}


def test_a_gateway_that_is_down_is_a_warning_not_an_error(monkeypatch, caplog):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MLOPS_PUSHGATEWAY_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MLOPS_PUSHGATEWAY_TIMEOUT", "2")
    with caplog.at_level(logging.WARNING, logger="mlops_ops.hooks.pushgateway"):
        assert push_metrics("drift", "churn", CONTEXT, DOCUMENTS["drift"]) is False
    assert "drift metrics of churn not pushed" in caplog.text
    assert "the task goes on" in caplog.text


def test_a_document_missing_a_field_or_a_bad_setting_is_a_warning(monkeypatch, caplog):
    monkeypatch.setenv("MLOPS_PUSHGATEWAY_URL", "http://127.0.0.1:9")
    with caplog.at_level(logging.WARNING, logger="mlops_ops.hooks.pushgateway"):
        assert push_metrics("ingest", "churn", CONTEXT, {}) is False
        monkeypatch.setenv("MLOPS_PUSHGATEWAY_TIMEOUT", "-1")
        assert push_metrics("ingest", "churn", CONTEXT, {"rows": 1}) is False
    assert "KeyError" in caplog.text
    assert "MLOPS_PUSHGATEWAY_TIMEOUT='-1'" in caplog.text
