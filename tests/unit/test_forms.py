"""The forms a person fills in Airflow's UI: trigger forms (optional Reason) and the mlflow connection.

The connection form is checked through the API server's own service that the UI calls
(``HookMetaService.hook_meta_data``), fed by the installed provider metadata; the trigger forms
through the DAGs' params as Airflow validates a trigger's conf.
"""

from __future__ import annotations

import copy

import pytest

from tests.conftest import ROOT


def _dag(kind: str, monkeypatch):
    from mlops_ops.config import load_pipeline_spec
    from mlops_ops.dag_factory import build_pipeline_dags

    spec = load_pipeline_spec(ROOT / "pipelines" / "churn.yaml")
    return build_pipeline_dags(spec)[f"churn_{kind}"]


@pytest.mark.parametrize("kind", ["training", "rollback"])
def test_reason_is_optional_on_the_trigger_form(kind, monkeypatch):
    dag = _dag(kind, monkeypatch)
    schema = dag.params.get_param("reason").schema
    # the UI marks a field required unless its type admits null; the form sends null when empty
    assert "null" in schema["type"], schema
    for empty in (None, ""):
        params = copy.deepcopy(dag.params)
        params["reason"] = empty
        params.validate()  # raises ParamValidationError when an empty Reason is refused


@pytest.mark.parametrize(("kind", "task_id"), [("training", "train"), ("rollback", "rollback")])
def test_an_empty_reason_renders_as_no_reason_not_as_none(kind, task_id, monkeypatch):
    dag = _dag(kind, monkeypatch)
    template = dag.get_task(task_id).reason
    env = dag.get_template_env()
    rendered = env.from_string(template).render(params={"reason": None}, dag_run={"run_type": "manual"})
    assert rendered in ("", "manual"), rendered
    assert "None" not in rendered


def test_the_mlflow_connection_form_declares_its_fields_with_labels_and_placeholders():
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    (meta,) = [m for m in HookMetaService.hook_meta_data() if m.connection_type == "mlflow"]
    assert meta.hook_name == "MLflow"
    extras = meta.extra_fields or {}
    assert {"tracking_uri", "registry_uri", "ui_url", "token"} <= set(extras)
    for name, field in extras.items():
        schema = field["schema"]
        assert schema.get("title"), (name, field)
        assert field.get("description"), (name, field)
        assert "null" in schema["type"], (name, field)  # every extra is optional
    assert extras["token"]["schema"]["format"] == "password"  # masked in the form
    assert extras["ui_url"]["schema"]["examples"] == ["http://localhost:5000"]
    host = meta.standard_fields.host
    assert host.title
    assert host.placeholder == "http://mlflow:5000"
    assert meta.standard_fields.login.title
