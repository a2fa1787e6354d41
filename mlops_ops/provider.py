"""Provider metadata for Airflow's ``apache_airflow_provider`` entry point.

Airflow reads it to offer the ``mlflow`` connection type in the UI and to know the extra links.
"""

from __future__ import annotations

from typing import Any

from mlops_ops import __version__

#: The ``mlflow`` connection's extras (``Connection.extra``), as form fields; see MlflowHook.
_MLFLOW_CONN_FIELDS: dict[str, dict[str, Any]] = {
    "tracking_uri": {
        "label": "Tracking URI",
        "description": "Optional; overrides the host. Any MLflow tracking URI: an http(s) server "
        "or a database URL (postgresql://..., sqlite:///...).",
        "schema": {
            "type": ["string", "null"],
            "examples": ["http://mlflow:5000", "postgresql://mlflow@db/mlflow"],
        },
    },
    "registry_uri": {
        "label": "Registry URI",
        "description": "Optional; the model registry when it is not the tracking server.",
        "schema": {"type": ["string", "null"], "examples": ["http://mlflow-registry:5000"]},
    },
    "ui_url": {
        "label": "MLflow UI URL",
        "description": "Optional; how a browser reaches the MLflow UI, for the task links. "
        "Default: the tracking server URL.",
        "schema": {"type": ["string", "null"], "examples": ["http://localhost:5000"]},
    },
    "token": {
        "label": "Token",
        "description": "Optional; a bearer token sent as MLFLOW_TRACKING_TOKEN (instead of user and password).",
        "schema": {"type": ["string", "null"], "format": "password"},
    },
}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "mlops-ops",
        "name": "mlops-ops",
        "description": "Operators and DAG builders for the whole life of a machine-learning model: "
        "ingestion, validation (Great Expectations), training (scikit-learn), MLflow tracking, "
        "gated deployment.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "MLflow",
                "external-doc-url": "https://mlflow.org/docs/latest/",
                "tags": ["software"],
            }
        ],
        "operators": [
            {
                "integration-name": "MLflow",
                "python-modules": [
                    "mlops_ops.operators.ingest",
                    "mlops_ops.operators.validate",
                    "mlops_ops.operators.train",
                    "mlops_ops.operators.evaluate",
                    "mlops_ops.operators.deploy",
                ],
            }
        ],
        "hooks": [{"integration-name": "MLflow", "python-modules": ["mlops_ops.hooks.mlflow"]}],
        "connection-types": [
            {
                "connection-type": "mlflow",
                "hook-class-name": "mlops_ops.hooks.mlflow.MlflowHook",
                "hook-name": "MLflow",
                # Airflow 3.2+ builds the connection form from this metadata (providers manager
                # `_load_ui_metadata`), without importing the hook
                "ui-field-behaviour": {
                    "relabeling": {
                        "host": "Tracking server URL or host",
                        "schema": "Scheme (when the host has none)",
                        "login": "Username (basic auth)",
                        "password": "Password (basic auth)",
                    },
                    "placeholders": {
                        "host": "http://mlflow:5000",
                        "schema": "http",
                        "port": "5000",
                        "login": "optional: MLflow basic-auth user",
                        "password": "optional",
                    },
                },
                "conn-fields": _MLFLOW_CONN_FIELDS,
            }
        ],
        "extra-links": [
            "mlops_ops.links.MlflowRunLink",
            "mlops_ops.links.MlflowModelVersionLink",
            "mlops_ops.links.ReportLink",
        ],
        "asset-uris": [{"schemes": ["mlops"], "handler": None}],
    }
