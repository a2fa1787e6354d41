"""Bad input fails the right task with a message naming the problem, and loses nothing.

A champion is trained once for the module; each case then feeds the training DAG bad data and
checks: the run fails at the task that should catch it, the error names the problem, no model
version is registered, the champion is unchanged and no temporary file is left in storage.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from mlops_ops.example.churn import generate, write_training_data
from mlops_ops.runner import run_dag
from tests.conftest import ROOT, champion_version, load_dag, mlflow_client, seed_mlflow_store, version_count

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained_home(airflow_db, tmp_path_factory):
    """An MLOPS_HOME whose churn model has a champion (v1); the source takes any file name."""
    root = tmp_path_factory.mktemp("bad-input")
    home, pipelines = root / "home", root / "pipelines"
    pipelines.mkdir()
    spec = (ROOT / "pipelines" / "churn.yaml").read_text()
    spec = spec.replace("/data/churn/daily/*.parquet", "/data/churn/daily/*")
    # any file name: bad inputs are written under names that carry no partition date
    spec = re.sub(r"\n  window: .*", "", spec)
    (pipelines / "churn.yaml").write_text(spec)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(home))
        mp.setenv("MLOPS_PIPELINES", str(pipelines))
        seed_mlflow_store(home)
        write_training_data(home / "data" / "churn" / "daily", rows=2000, seed=0)
        result = run_dag(load_dag("churn_training"), conf={})
        assert result.state == "success"
        assert champion_version(mlflow_client()) == "1"
    return home, pipelines


@pytest.fixture
def home(trained_home, monkeypatch):
    home, pipelines = trained_home
    monkeypatch.setenv("MLOPS_HOME", str(home))
    monkeypatch.setenv("MLOPS_PIPELINES", str(pipelines))
    data = home / "data" / "churn" / "daily"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    return home


def _run_expecting_failure(home: Path, capfd, failing_task: str, *needles: str):
    client = mlflow_client()
    versions_before = version_count(client)
    result = run_dag(load_dag("churn_training"), conf={})
    out = capfd.readouterr()
    text = out.out + out.err
    assert result.state == "failed", (result.tasks, result.returned.get("ingest"))
    assert result.tasks[failing_task] == "failed", result.tasks
    assert result.tasks["deploy"] in ("upstream_failed", "skipped")
    for needle in needles:
        assert needle in text, f"{needle!r} not in the task's error output"
    assert version_count(client) == versions_before, "no model version may be registered"
    assert champion_version(client) == "1", "the champion must not change"
    leftovers = [p for p in (home / "storage").rglob("*") if ".tmp-" in p.name]
    assert not leftovers, leftovers
    return result, text


def test_missing_file(home, capfd):
    _run_expecting_failure(home, capfd, "ingest", "no file matches", "/data/churn/daily/*")


def test_empty_file(home, capfd):
    (home / "data" / "churn" / "daily" / "part-0.csv").write_bytes(b"")
    _run_expecting_failure(home, capfd, "ingest", "part-0.csv is empty")


def test_header_only_csv_has_no_rows(home, capfd):
    (home / "data" / "churn" / "daily" / "part-0.csv").write_text("tenure_months,churned\n")
    _run_expecting_failure(home, capfd, "ingest", "0 data row(s)")


def test_malformed_parquet(home, capfd):
    (home / "data" / "churn" / "daily" / "part-0.parquet").write_bytes(b"PAR1 this is not parquet")
    _run_expecting_failure(home, capfd, "ingest", "part-0.parquet is not a readable parquet file")


def test_missing_target_column(home, capfd):
    generate(500, seed=5).drop(columns=["churned"]).to_parquet(
        home / "data" / "churn" / "daily" / "p.parquet"
    )
    _run_expecting_failure(home, capfd, "validate", "column 'churned' is missing")


def test_text_in_a_numeric_column(home, capfd):
    frame = generate(500, seed=6)
    frame["monthly_charges"] = frame["monthly_charges"].astype(str)
    frame.loc[[3, 17], "monthly_charges"] = ["twelve", "abc"]
    frame.to_csv(home / "data" / "churn" / "daily" / "p.csv", index=False)
    _run_expecting_failure(
        home, capfd, "validate", "column 'monthly_charges' should be numeric", "['twelve', 'abc']"
    )


def test_infinite_values(home, capfd):
    frame = generate(500, seed=7)
    frame.loc[[1, 2], "data_usage_gb"] = np.inf
    frame.to_parquet(home / "data" / "churn" / "daily" / "p.parquet")
    _run_expecting_failure(home, capfd, "validate", "column 'data_usage_gb' holds 2 infinite value(s)")


def test_missing_target_values(home, capfd):
    frame = generate(500, seed=8)
    frame["churned"] = frame["churned"].astype("float64")
    frame.loc[[0, 5, 9], "churned"] = np.nan
    frame.to_parquet(home / "data" / "churn" / "daily" / "p.parquet")
    _run_expecting_failure(
        home, capfd, "validate", "expect_column_values_to_not_be_null failed on column 'churned'"
    )


def test_unreachable_mlflow(home, capfd, monkeypatch):
    write_training_data(home / "data" / "churn" / "daily", rows=800, seed=9)
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", '{"conn_type": "mlflow", "host": "http://127.0.0.1:9"}')
    result, _ = _run_expecting_failure(
        home,
        capfd,
        "validate",
        "MLflow tracking server at http://127.0.0.1:9 did not answer",
        "'mlflow_default'",
    )
    assert result.tasks["ingest"] == "success"


def test_unknown_categories_are_a_warning_and_the_model_copes(home, capfd):
    frame = generate(2000, seed=10)
    frame.loc[frame.index[:300], "contract"] = "three_year"  # a category the champion never saw
    frame.to_parquet(home / "data" / "churn" / "daily" / "p.parquet")
    result = run_dag(load_dag("churn_training"), conf={})
    assert result.tasks["validate"] == "success", result.tasks
    assert result.returned["validate"]["status"] == "passed_with_warnings"
    assert result.tasks["evaluate"] == "success"  # the champion scored rows with an unseen category
    assert result.returned["evaluate"]["champion_metrics"]["roc_auc"] > 0.6
    assert "expect_column_values_to_be_in_set failed on column 'contract'" in capfd.readouterr().out
