"""Operator extra links: the MLflow run and model version behind a task, and its report.

In Airflow 3 ``get_link()`` runs on the worker after ``execute()``; the URLs are read from the
task's return value in XCom. The *Report* link points at the mlops-ops plugin on Airflow's own API
server (``mlops_ops.ui``), a path under ``[api] base_url``, so it opens in the UI, behind its login.
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


def report_url(report_uri: str, base_url: str = "") -> str:
    """The plugin's URL of a stored report, or "" when ``report_uri`` is not one.

    :param report_uri: the report's storage URI, ``.../<pipeline>/reports/<dag>/<run>/<task>.json``
        (any scheme: ``file://``, ``s3://``...).
    :param base_url: Airflow's ``[api] base_url``; only its path is kept (``/`` when empty), so
        the link is relative to the server the UI was opened from.
    """
    from urllib.parse import quote, urlsplit

    parts = report_uri.rstrip("/").split("/")
    if len(parts) < 5 or parts[-4] != "reports" or not parts[-1].endswith(".json"):
        return ""
    pipeline, _, dag_id, run_id, name = parts[-5:]
    root = urlsplit(base_url).path.rstrip("/")
    path = "/".join(quote(p, safe="") for p in (pipeline, dag_id, run_id, name[: -len(".json")] + ".html"))
    return f"{root}/mlops/reports/{path}"


class ReportLink(BaseOperatorLink):
    """The task's stored report (validation result, gate decision) served by the mlops-ops plugin
    on Airflow's API server (``/mlops/reports/...``), also when the task failed."""

    name = "Report"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.configuration import conf

        return report_url(_pushed(ti_key, "report_uri"), conf.get("api", "base_url", fallback="") or "")
