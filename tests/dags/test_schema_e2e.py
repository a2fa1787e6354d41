"""Issue 8 end to end: a model trained on typed Parquet scores and watches a CSV day as it was trained.

Real Airflow (``dag.test()`` on SQLite), real MLflow, real storage. The training data carries an
integer category, a True/False flag, uint64 customer ids at or above 2**63 and a ``valid_to``
timestamp of 9999-12-31; the next day arrives as a CSV export with one empty flag cell and one
missing store. Right answers: ingested; scored with the ids copied exactly; watched with no
"unseen" store and no drift.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlops_ops.runner import run_dag
from tests.conftest import champion_version, load_dag, mlflow_client

pytestmark = pytest.mark.slow

NAME = "shop"
BIG = 2**63


def _rows(n: int, seed: int, first_id: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    store = rng.choice([101, 102, 103, 104], n)
    flag = rng.integers(0, 2, n).astype(bool)
    amount = rng.normal(50, 10, n)
    churned = ((amount - 50) / 10 + flag + (store == 103) + rng.normal(size=n) > 1).astype(int)
    return pd.DataFrame(
        {
            "customer_id": np.arange(first_id, first_id + n, dtype="uint64") + np.uint64(BIG),
            "store": store,
            "flag": flag,
            "amount": amount,
            "valid_to": pd.Series([pd.Timestamp("9999-12-31")] * n).astype("datetime64[us]"),
            "churned": churned,
        }
    )


def _spec(pipelines: Path) -> None:
    spec = {
        "name": NAME,
        "source": {"uri": "${MLOPS_HOME}/data/shop/train/*.parquet"},
        "target": "churned",
        "features": {"numeric": ["amount", "flag"], "categorical": ["store"]},
        "model": {"estimator": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 500}},
        "evaluation": {"primary_metric": "roc_auc", "bootstrap": {"enabled": False}},
        "validation": {"min_rows": 50},
        "monitoring": {
            "source": {"uri": "${MLOPS_HOME}/data/shop/daily/{{ ds }}.csv"},
            "drift": {"min_rows": 100},
            "performance": {"min_rows": 100},
        },
        "scoring": {
            "source": {"uri": "${MLOPS_HOME}/data/shop/daily/{{ ds }}.csv"},
            "id_columns": ["customer_id"],
        },
    }
    (pipelines / f"{NAME}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


@pytest.fixture(scope="module")
def shop(airflow_db, tmp_path_factory):
    root = tmp_path_factory.mktemp("schema-e2e")
    home, pipelines = root / "home", root / "pipelines"
    pipelines.mkdir()
    _spec(pipelines)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(home))
        mp.setenv("MLOPS_PIPELINES", str(pipelines))
        train = home / "data" / NAME / "train"
        train.mkdir(parents=True)
        _rows(1500, seed=0, first_id=0).to_parquet(train / "part-0.parquet", index=False)
        result = run_dag(load_dag(f"{NAME}_training"), conf={})
        assert result.state == "success", result.tasks
        assert champion_version(mlflow_client(), NAME) == "1"
        day = _rows(400, seed=1, first_id=10_000)
        csv = day.astype({"store": "float64", "flag": object})
        csv.loc[5, "store"] = np.nan
        csv["flag"] = csv["flag"].map({True: "True", False: "False"})
        csv.loc[9, "flag"] = ""
        daily = home / "data" / NAME / "daily"
        daily.mkdir(parents=True)
        csv.to_csv(daily / "2026-03-01.csv", index=False)
        yield home, day, mp


def test_the_schema_is_stored_with_the_version(shop):
    import mlflow.artifacts

    from mlops_ops.settings import embedded_tracking_uri

    client = mlflow_client()
    version = client.get_model_version_by_alias(NAME, "champion")
    path = mlflow.artifacts.download_artifacts(
        run_id=version.run_id, artifact_path="schema.json", tracking_uri=embedded_tracking_uri()
    )
    schema = yaml.safe_load(Path(path).read_text())
    types = {c["name"]: c["type"] for c in schema["columns"]}
    assert types == {
        "customer_id": "id",
        "store": "categorical",
        "flag": "numeric",
        "amount": "numeric",
        "valid_to": "ignored",
    }


def test_a_csv_day_is_scored_with_the_ids_copied_exactly(shop):
    home, day, _ = shop
    when = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    result = run_dag(load_dag(f"{NAME}_batch_scoring"), logical_date=when)
    assert result.state == "success", result.tasks
    out = pd.read_parquet(result.returned["score"]["uri"])
    assert [int(v) for v in out["customer_id"]] == [int(v) for v in day["customer_id"]]
    assert min(int(v) for v in out["customer_id"]) >= BIG
    assert out["probability"].notna().all()


def test_a_csv_day_is_watched_without_unseen_stores_or_drift(shop):
    when = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    result = run_dag(load_dag(f"{NAME}_monitoring"), logical_date=when)
    assert result.tasks["validate_batch"] == "success", result.tasks
    assert result.tasks["detect_drift"] == "success", result.tasks
    drift = result.returned["detect_drift"]
    assert drift["status"] == "no_drift", drift["reasons"]
    report = yaml.safe_load(Path(drift["report_uri"].removeprefix("file:")).read_text())
    store = next(c for c in report["columns"] if c["name"] == "store")
    assert store["unseen_share"] == 0.0
    assert result.tasks["check_performance"] == "success"
