"""Operator extra links: the MLflow run and model version behind a task, and its report.

In Airflow 3 ``get_link()`` runs on the worker after ``execute()``; the URLs are read from the
task's return value in XCom.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey


def _returned(ti_key: TaskInstanceKey, field: str) -> str:
    from airflow.sdk.execution_time.xcom import XCom

    value: Any = XCom.get_value(ti_key=ti_key, key="return_value")
    if isinstance(value, dict) and isinstance(value.get(field), str):
        return value[field]
    return ""


def _pushed(ti_key: TaskInstanceKey, key: str) -> str:
    from airflow.sdk.execution_time.xcom import XCom

    value: Any = XCom.get_value(ti_key=ti_key, key=key)
    return value if isinstance(value, str) else ""


class MlflowRunLink(BaseOperatorLink):
    """The MLflow run the task logged (training) or evaluated (gate)."""

    name = "MLflow run"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        return _returned(ti_key, "run_url")


class MlflowModelVersionLink(BaseOperatorLink):
    """The registered model version the task created or promoted."""

    name = "MLflow model version"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        return _returned(ti_key, "model_url")


class ReportLink(BaseOperatorLink):
    """The task's stored report (validation result, gate decision), also when the task failed."""

    name = "Report"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        uri = _pushed(ti_key, "report_uri")
        return uri[: -len(".json")] + ".html" if uri.endswith(".json") else uri
