"""The FastAPI app the plugin mounts on Airflow's API server at ``/mlops``.

Routes (all behind Airflow's authentication: a request without a valid Airflow token, as a
bearer header or the UI's ``_token`` cookie, gets 401; a user without read access to the DAG
gets 403):

- ``GET /mlops/`` the pipelines with documents in storage, each linking to its page;
- ``GET /mlops/pipelines/<pipeline>`` the pipeline page (champion, versions, the deployment
  timeline, drift and performance charts, retrain requests);
- ``GET /mlops/reports/<pipeline>/<dag_id>/<run_id>/<task_id>.html`` (or ``.json``) a stored
  report, the target of every task's *Report* link (:class:`mlops_ops.links.ReportLink`).

Everything is read from storage (``MLOPS_STORAGE``), never from XCom. Imports of FastAPI and
Airflow's API modules happen in :func:`create_app`, which only the API server calls: the plugin
module is also imported by schedulers and task processes.
"""

# no ``from __future__ import annotations`` here: FastAPI reads the routes' annotations at run
# time, and the types they name are imported inside create_app
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

#: where the app is mounted on the API server (below ``[api] base_url``)
URL_PREFIX = "/mlops"
#: the training DAG a pipeline page's access is checked against (``<pipeline>_training``)
_ACCESS_DAG = "{pipeline}_training"
#: reports are our own pages, but their text comes from data (column names, values): no script
_REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"


def create_app() -> "FastAPI":
    """The app: three read-only routes over storage, each requiring an authorised Airflow user."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
    from fastapi import Depends, FastAPI, HTTPException, Request
    from fastapi.responses import HTMLResponse, Response

    from mlops_ops.ui import store
    from mlops_ops.ui.render import render_index, render_pipeline

    app = FastAPI(title="mlops-ops", docs_url=None, redoc_url=None, openapi_url=None)

    def may_read(user: Any, pipeline: str) -> bool:
        details = DagDetails(id=_ACCESS_DAG.format(pipeline=pipeline))
        return get_auth_manager().is_authorized_dag(method="GET", details=details, user=user)

    def links(request: Request) -> dict[str, str]:
        mlops = request.scope.get("root_path", "").rstrip("/")
        return {"mlops": mlops, "airflow": mlops[: -len(URL_PREFIX)] if mlops.endswith(URL_PREFIX) else ""}

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request, user: GetUserDep) -> HTMLResponse:
        pipelines = [p for p in store.list_pipelines() if may_read(user, p)]
        return HTMLResponse(render_index(pipelines, links(request)))

    @app.get("/pipelines/{pipeline}", response_class=HTMLResponse)
    def pipeline_page(pipeline: str, request: Request, user: GetUserDep) -> HTMLResponse:
        try:
            store.safe_segment(pipeline, "pipeline")
        except store.UnsafeNameError as err:
            raise HTTPException(400, str(err)) from None
        if not may_read(user, pipeline):
            raise HTTPException(403, "Forbidden")
        return HTMLResponse(render_pipeline(store.read_history(pipeline), links(request)))

    @app.get(
        "/reports/{pipeline}/{dag_id}/{run_id}/{file_name}",
        dependencies=[Depends(requires_access_dag("GET", DagAccessEntity.TASK_INSTANCE))],
    )
    def report(pipeline: str, dag_id: str, run_id: str, file_name: str) -> Response:
        try:
            path = store.report_path(pipeline, dag_id, run_id, file_name)
        except store.UnsafeNameError as err:
            raise HTTPException(400, str(err)) from None
        if not path.exists():
            raise HTTPException(404, f"no report {file_name} for {dag_id} / {run_id} in {pipeline}'s storage")
        with path.open("rb") as fh:
            body = fh.read()
        html = file_name.endswith(".html")
        return Response(
            body,
            media_type="text/html; charset=utf-8" if html else "application/json",
            headers={"Content-Security-Policy": _REPORT_CSP, "X-Content-Type-Options": "nosniff"},
        )

    return app
