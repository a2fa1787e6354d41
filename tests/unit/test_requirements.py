"""The pip requirements logged with a model: read from its pickle, pinned to what is installed."""

from __future__ import annotations

import logging
import pickle
import sys
import types
from importlib import metadata

import cloudpickle
import numpy as np
import pytest

from mlops_ops.core import requirements as req
from mlops_ops.core.requirements import BASE, model_requirements, pickled_modules, requirements_for


def _installed(dist: str) -> str:
    return f"{dist}=={metadata.version(dist).split('+')[0]}"


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_every_pickle_protocol_names_its_modules(protocol):
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    obj = {"scaler": StandardScaler(), "log": FunctionTransformer(func=np.log1p), "again": StandardScaler()}
    assert {"sklearn", "numpy"} <= pickled_modules(pickle.dumps(obj, protocol=protocol))


def test_a_function_pickled_by_value_names_the_modules_it_uses():
    # defined in a module nobody can import: cloudpickle stores the function by value, and the
    # module it uses (json here) only as the argument of cloudpickle's subimport
    dynamic = types.ModuleType("not_importable_anywhere")
    exec("import json\ndef encode(x):\n    return json.dumps(x)\n", dynamic.__dict__)
    found = pickled_modules(cloudpickle.dumps(dynamic.encode))
    assert {"cloudpickle", "json"} <= found
    assert "not_importable_anywhere" not in found


def test_not_a_pickle_is_an_error():
    with pytest.raises(ValueError, match="opcode"):
        pickled_modules(b"\xff\x00 not a pickle")


@pytest.mark.parametrize(
    ("estimator", "params"),
    [
        ("sklearn.linear_model.LogisticRegression", {"max_iter": 200}),
        ("sklearn.ensemble.HistGradientBoostingClassifier", {"max_iter": 20}),
        ("sklearn.ensemble.RandomForestRegressor", {"n_estimators": 5}),
    ],
)
def test_a_trained_pipeline_needs_the_pinned_scientific_stack_and_nothing_of_mlflow(estimator, params):
    """The scientific stack, and mlops-ops itself: every model's first step is the version's frozen
    schema (``core.schema.SchemaCoercion``), so loading it elsewhere needs this package."""
    from mlops_ops.core.data import resolve_features
    from mlops_ops.core.training import train_model
    from mlops_ops.example.churn import generate

    frame = generate(300, seed=1)
    if "Regressor" in estimator:
        frame = frame.assign(churned=np.arange(len(frame), dtype=float))
    features = resolve_features(frame, "churned", None, None)
    result = train_model(frame, target="churned", features=features, estimator=estimator, params=params)
    assert model_requirements(result.model) == sorted(_installed(d) for d in (*BASE, "mlops-ops"))


def test_a_third_party_estimator_brings_its_distribution(tmp_path, monkeypatch):
    """A model whose estimator comes from another package requires that package, pinned."""
    package = tmp_path / "acme_models"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from sklearn.base import BaseEstimator, ClassifierMixin\n"
        "class AcmeClassifier(ClassifierMixin, BaseEstimator):\n"
        "    def fit(self, X, y):\n"
        "        return self\n"
    )
    info = tmp_path / "acme_models-2.3.4+cpu.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-models\nVersion: 2.3.4+cpu\n")
    (info / "top_level.txt").write_text("acme_models\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    req._distributions.cache_clear()
    try:
        import acme_models
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        model = Pipeline([("scale", StandardScaler()), ("model", acme_models.AcmeClassifier())])
        found = model_requirements(model)
    finally:
        sys.modules.pop("acme_models", None)
        req._distributions.cache_clear()
    assert "acme-models==2.3.4" in found  # the local label is not on any index: dropped
    assert set(found) == {"acme-models==2.3.4", *(_installed(d) for d in BASE)}


def test_modules_without_a_distribution_are_named_in_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger=req.__name__):
        found = requirements_for(["json", "builtins", "__main__", "a_local_helper_module"], base=[])
    assert found == []
    assert "a_local_helper_module" in caplog.text
    assert "json" not in caplog.text


@pytest.mark.slow
def test_the_logged_model_carries_the_requirements(mlflow_store):
    """Through the hook and a real MLflow store: requirements.txt holds the computed pins."""
    import mlflow

    from mlops_ops.core.data import resolve_features
    from mlops_ops.core.training import train_model
    from mlops_ops.example.churn import generate
    from mlops_ops.hooks.mlflow import MlflowHook

    frame = generate(300, seed=2)
    features = resolve_features(frame, "churned", None, None)
    result = train_model(
        frame,
        target="churned",
        features=features,
        estimator="sklearn.linear_model.LogisticRegression",
        params={"max_iter": 200},
    )
    logged = MlflowHook().log_training_run(
        experiment="churn",
        model_name="churn",
        model=result.model,
        params={},
        metrics=result.metrics,
        tags={},
        dataset=frame,
        dataset_source="test",
        dataset_name="t",
        target="churned",
        input_example=result.input_example,
        signature_output=result.predictions_example,
        artifacts={},
    )
    MlflowHook()._configure()
    path = mlflow.pyfunc.get_model_dependencies(logged["model_uri"])
    lines = [line.strip() for line in open(path).read().splitlines() if line.strip()]
    assert sorted(line for line in lines if not line.startswith("mlflow")) == sorted(
        _installed(d) for d in (*BASE, "mlops-ops")
    )
    assert any(line.startswith("mlflow==") for line in lines)
    loaded = MlflowHook().load_sklearn_model(logged["model_uri"])
    x = result.input_example
    assert (loaded.predict_proba(x) == result.model.predict_proba(x)).all()
