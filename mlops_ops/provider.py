"""Provider metadata for Airflow's ``apache_airflow_provider`` entry point.

Airflow reads it to offer the ``mlflow`` connection type in the UI and to know the extra links.
"""

from __future__ import annotations

from typing import Any

from mlops_ops import __version__


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
            }
        ],
        "extra-links": [
            "mlops_ops.links.MlflowRunLink",
            "mlops_ops.links.MlflowModelVersionLink",
            "mlops_ops.links.ReportLink",
        ],
        "asset-uris": [{"schemes": ["mlops"], "handler": None}],
    }
