"""The schema travels with the model: MLflow (on SQLite) signature, pyfunc on raw rows, artifacts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops_ops.core.data import normalise
from mlops_ops.core.schema import Schema, infer_schema, mlflow_signature
from mlops_ops.core.training import train_model


def _rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    store = rng.choice([101, 102, 103, 104], n)
    flag = rng.integers(0, 2, n).astype(bool)
    x = rng.normal(size=n)
    y = (x + flag + (store == 103) + rng.normal(size=n) > 1).astype(int)
    return pd.DataFrame({"store": store, "flag": flag, "x": x, "customer_id": np.arange(n), "y": y})


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    import mlflow
    import mlflow.sklearn

    root = tmp_path_factory.mktemp("mlflow")
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    # artifacts under the test's folder, not ./mlruns of the working directory
    experiment = mlflow.create_experiment("schema", artifact_location=(root / "artifacts").as_uri())
    mlflow.set_experiment(experiment_id=experiment)
    frame = normalise(_rows(400, seed=0))
    schema = infer_schema(
        frame,
        "y",
        numeric=["x", "flag"],
        categorical=["store"],
        types={"flag": "boolean"},
        id_columns=["customer_id"],
    )
    result = train_model(
        frame,
        target="y",
        features=schema.feature_set,
        estimator="sklearn.linear_model.LogisticRegression",
        params={},
        schema=schema,
    )
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(
            sk_model=result.model,
            name="model",
            signature=mlflow_signature(schema, result.predictions_example),
            input_example=frame[schema.features].head(5),
            serialization_format="cloudpickle",
        )
        mlflow.log_dict(schema.to_dict(), "schema.json")
    yield info.model_uri, run.info.run_id, result, schema
    mlflow.set_tracking_uri(None)


def test_pyfunc_accepts_the_raw_rows_the_model_was_trained_on_and_later_dtypes(logged):
    import mlflow.pyfunc

    uri, _, result, schema = logged
    model = mlflow.pyfunc.load_model(uri)
    raw = _rows(40, seed=1)
    expected = result.model.predict(schema.coerce(normalise(raw)))
    np.testing.assert_array_equal(model.predict(raw), expected)
    # the same rows a day later: the store as float with a gap, the flag as text, ids extra
    later = raw.astype({"store": "float64"}).astype({"flag": object})
    later.loc[3, "store"] = np.nan
    later["flag"] = later["flag"].map({True: "yes", False: "no"})
    got = np.asarray(model.predict(later))
    keep = np.arange(40) != 3
    np.testing.assert_array_equal(got[keep], expected[keep])


def test_the_schema_artifact_round_trips(logged):
    import mlflow.artifacts

    _, run_id, _, schema = logged
    doc = mlflow.artifacts.load_dict(f"runs:/{run_id}/schema.json")
    assert Schema.from_dict(doc) == schema
    assert Schema.from_dict(doc).type_of("customer_id") == "id"
    assert Schema.from_dict(doc).type_of("flag") == "boolean"


def test_the_signature_lists_every_feature_as_an_optional_input(logged):
    from mlflow.models import get_model_info

    uri, _, _, schema = logged
    inputs = get_model_info(uri).signature.inputs
    assert inputs.input_names() == schema.features
    assert all(not col.required for col in inputs.inputs)
