"""The statistical gate end to end with dag.test(): bootstrap, slices and permutation importance.

Real Airflow (SQLite), real MLflow (SQLite), real storage. The churn pipeline gets two slice
columns; the default bootstrap (non-inferiority, margin 0.01 on roc_auc) applies.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mlops_ops.example.churn import write_training_data
from mlops_ops.runner import run_dag
from tests.conftest import champion_version, mlflow_client

pytestmark = pytest.mark.slow


def _with_slices(home: Path) -> None:
    spec_path = home.parent / "pipelines" / "churn.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    # a lower floor than the example's 0.70: the smallest contract slice sits near it
    spec["evaluation"]["thresholds"] = {"roc_auc": {"lower": 0.6}}
    spec["evaluation"]["slices"] = [
        {"column": "contract", "min_rows": 50},
        {"column": "payment_method", "min_rows": 200, "values": ["card", "mailed_check", "cheque"]},
    ]
    spec_path.write_text(yaml.safe_dump(spec))


def _stored(decision: dict) -> tuple[dict, str]:
    path = Path(decision["report_uri"].removeprefix("file://"))
    return json.loads(path.read_text()), path.with_suffix(".html").read_text()


def test_the_gate_records_bootstrap_slices_and_importance(airflow_db, mlops_home, mlflow_store, dag_loader):
    _with_slices(mlops_home)
    data = mlops_home / "data" / "churn" / "daily"

    # run 1: no champion, so no bootstrap ("no baseline"); slices get value rules only
    write_training_data(data, rows=3000, seed=0)
    first = run_dag(dag_loader("churn_training"), conf={})
    assert first.tasks["deploy"] == "success", first.tasks
    decision = first.returned["evaluate"]
    assert decision["bootstrap"]["status"] == "no_baseline"
    doc, page = _stored(decision)
    assert doc["bootstrap"]["message"].startswith("no baseline")
    assert not [r for r in doc["rules"] if r["rule"].startswith("bootstrap_")]
    slices = {s["slice"]: s for s in doc["slices"]}
    assert {"contract=month_to_month", "contract=one_year", "contract=two_year"} <= set(slices)
    assert slices["payment_method=cheque"]["rows"] == 0  # listed but absent: reported, skipped
    assert slices["payment_method=cheque"]["status"] == "skipped"
    assert slices["payment_method=mailed_check"]["status"] == "skipped"  # ~110 rows < 200
    assert all(r["verdict"] != "fail" for r in doc["rules"])

    # permutation importance: in the decision, the HTML and the challenger's MLflow run
    importance = doc["importance"]
    assert importance["metric"] == "roc_auc"
    features = [f["feature"] for f in importance["features"]]
    assert sorted(features) == sorted(
        [
            "tenure_months",
            "monthly_charges",
            "support_calls",
            "data_usage_gb",
            "contract",
            "region",
            "payment_method",
        ]
    )
    assert features[0] in ("tenure_months", "contract")  # the strongest effects of the generator
    client = mlflow_client()
    run = client.get_run(first.returned["train"]["run_id"])
    assert run.data.metrics["importance.tenure_months"] == pytest.approx(
        next(f["importance"] for f in importance["features"] if f["feature"] == "tenure_months")
    )
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "explain")}
    assert "explain/permutation_importance.json" in artifacts
    assert "<h2>Permutation importance</h2>" in page
    assert "<h2>Slices</h2>" in page

    # run 2: noisy labels; the bootstrap interval shows the challenger is worse beyond the margin
    write_training_data(data, rows=3000, seed=1, label_noise=0.35)
    second = run_dag(dag_loader("churn_training"), conf={})
    assert second.state == "success"
    assert second.tasks["deploy"] == "skipped"
    rejected = second.returned["evaluate"]
    assert rejected["promote"] is False
    boot = rejected["bootstrap"]
    assert boot["status"] == "fail"
    assert boot["lower"] < boot["estimate"] < boot["upper"]
    assert boot["lower"] < -0.01  # non-inferiority at margin 0.01 is not shown
    assert any("non-inferiority needs the lower bound > -0.01" in r for r in rejected["reasons"])
    doc, page = _stored(rejected)
    [rule] = [r for r in doc["rules"] if r["rule"] == "bootstrap_non_inferiority"]
    assert (rule["verdict"], rule["observed"]) == ("fail", doc["bootstrap"]["lower"])
    assert doc["bootstrap"]["resamples"] == 1000
    assert doc["bootstrap"]["rows"] == doc["holdout_rows"]
    assert {r["slice"] for r in doc["rules"] if r["rule"] == "change_absolute"} >= {
        "all",
        "contract=month_to_month",
    }
    assert "<svg" in page
    assert champion_version(client) == "1"
