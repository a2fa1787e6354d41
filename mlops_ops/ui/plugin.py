"""The Airflow plugin (entry point ``airflow.plugins``): the reports and pipeline pages app on the
API server, and the *ML pipelines* entry in the UI's navigation.

Airflow imports this module in every process that loads plugins (API server, scheduler, task
processes); the FastAPI app is built only when the API server asks for ``fastapi_apps``.
"""

from __future__ import annotations

import functools
from typing import Any

from airflow.sdk.plugins_manager import AirflowPlugin

from mlops_ops.ui.app import URL_PREFIX


class MlopsUiPlugin(AirflowPlugin):
    """Mounts :func:`mlops_ops.ui.app.create_app` at ``/mlops`` and lists ``/mlops/`` in the nav
    (opened inside the Airflow UI at ``/plugin/mlops``)."""

    name = "mlops_ops"
    external_views = [
        {
            "name": "ML pipelines",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "url_route": "mlops",
        }
    ]

    @functools.cached_property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        from mlops_ops.ui.app import create_app

        return [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "mlops-ops reports"}]
