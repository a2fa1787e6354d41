"""One contract, checked over every operator (as scikit-learn's parametrize_with_checks does)."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from tests.conftest import ROOT

HEAVY = ("pandas", "numpy", "scipy", "sklearn", "mlflow", "great_expectations", "pyarrow")

# the smallest set of arguments each operator needs besides its templated fields
REQUIRED = {
    "IngestDatasetOperator": {},
    "ValidateDataOperator": {"target": "y"},
    "TrainModelOperator": {"target": "y", "estimator": "sklearn.linear_model.LogisticRegression"},
    "EvaluateModelOperator": {},
    "DeployModelOperator": {},
    "DetectDriftOperator": {},
    "CheckModelPerformanceOperator": {"target": "y", "metric": "roc_auc"},
    "EstimatePerformanceOperator": {"metric": "roc_auc"},
    "RequestRetrainOperator": {},
    "BatchScoreOperator": {},
    "ResolveChampionOperator": {},
    "RollbackModelOperator": {},
    "ReleaseChallengerOperator": {"strategy": "canary"},
    "JudgeReleaseOperator": {"deployment": {}},
    "ConcludeReleaseOperator": {},
    "WatchChampionOperator": {"deployment": {}},
    "JoinOutcomesOperator": {"label_column": "y", "prediction_id": "pid"},
}


def _operators():
    import mlops_ops.operators as ops

    return [getattr(ops, name) for name in ops.__all__]


@pytest.fixture(params=list(REQUIRED), ids=list(REQUIRED))
def operator_class(request):
    import mlops_ops.operators as ops

    return getattr(ops, request.param)


def test_every_exported_operator_is_covered():
    assert sorted(REQUIRED) == sorted(cls.__name__ for cls in _operators())


def test_constructible_with_jinja_in_every_templated_field_and_no_connection(operator_class):
    from airflow.sdk import DAG

    jinja = {field: "{{ ti.xcom_pull(task_ids='upstream') }}" for field in operator_class.template_fields}
    with DAG("contract", schedule=None):
        op = operator_class(task_id="op", pipeline="demo", **REQUIRED[operator_class.__name__], **jinja)
    for field, value in jinja.items():
        assert getattr(op, field) == value, f"{field} must be stored as given (rendered later)"


def test_templated_fields_are_init_arguments_of_the_same_name(operator_class):
    params = inspect.signature(operator_class.__init__).parameters
    for field in operator_class.template_fields:
        assert field in params, f"{operator_class.__name__}.{field} is templated but not an __init__ argument"
    assert "(templated)" in (operator_class.__doc__ or ""), "document templated fields as (templated)"


def test_init_only_assigns_no_hook_is_created(operator_class, monkeypatch):
    from airflow.sdk import DAG

    from mlops_ops.hooks import mlflow as mlflow_hooks

    def refuse(*args, **kwargs):
        raise AssertionError("a hook was created in __init__")

    monkeypatch.setattr(mlflow_hooks.MlflowHook, "__init__", refuse)
    with DAG("contract2", schedule=None):
        operator_class(
            task_id="op",
            pipeline="demo",
            **REQUIRED[operator_class.__name__],
            **{f: "x" for f in operator_class.template_fields},
        )


def test_importing_operators_and_dag_files_loads_nothing_heavy():
    code = f"""
import json, runpy, sys, os
os.environ["MLOPS_PIPELINES"] = {str(ROOT / "pipelines")!r}
import mlops_ops, mlops_ops.operators, mlops_ops.hooks, mlops_ops.links, mlops_ops.provider
import mlops_ops.dag_factory, mlops_ops.config, mlops_ops.assets
for path in {sorted(str(p) for p in (ROOT / "dags").glob("*.py"))!r}:
    runpy.run_path(path)
print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(HEAVY)!r}))))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_provider_entry_point_and_info_match_airflows_schema():
    import airflow
    import jsonschema

    eps = [
        ep
        for ep in metadata.entry_points(group="apache_airflow_provider")
        if ep.value.startswith("mlops_ops")
    ]
    assert eps, "mlops-ops must declare the apache_airflow_provider entry point (pip install -e .)"
    info = eps[0].load()()
    schema_path = Path(airflow.__file__).parent / "provider_info.schema.json"
    jsonschema.validate(info, json.loads(schema_path.read_text()))
    assert {c["connection-type"] for c in info["connection-types"]} == {"mlflow"}
    for dotted in [c["hook-class-name"] for c in info["connection-types"]] + info["extra-links"]:
        module, _, name = dotted.rpartition(".")
        assert hasattr(__import__(module, fromlist=[name]), name), dotted


def test_extra_links_are_declared_on_the_operators():
    from mlops_ops.operators import EvaluateModelOperator, TrainModelOperator, ValidateDataOperator

    names = {
        cls.__name__: {link.name for link in cls.operator_extra_links}
        for cls in (TrainModelOperator, EvaluateModelOperator, ValidateDataOperator)
    }
    assert names["TrainModelOperator"] == {"MLflow run", "MLflow model version"}
    assert "Report" in names["EvaluateModelOperator"]
    assert "Report" in names["ValidateDataOperator"]
