"""`mlops-ops demo`, as `make demo` runs it: the whole lifecycle on embedded defaults."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys

import pytest

from mlops_ops.embedded import embedded_env

pytestmark = pytest.mark.slow


def test_demo_runs_the_lifecycle_and_prints_the_summary(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS_", "MLFLOW_"))}
    started = dt.datetime.now(dt.UTC)
    out = subprocess.run(
        [sys.executable, "-m", "mlops_ops.cli", "demo", "--home", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    log = tmp_path / "demo" / "logs" / "demo.log"
    errors = (
        [line for line in log.read_text().splitlines() if "error" in line.lower()] if log.exists() else []
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:] + "\n".join(errors[-40:])
    text = out.stdout
    # the first model, then quiet days
    assert "gate: PROMOTE v1 against no baseline" in text
    assert "2026-03-01 vs v1: drift no_drift" in text
    # the shift: one retrain request, then the cooldown holds
    assert text.count("RETRAIN REQUESTED") == 1
    assert "no new request: cooldown (same incident)" in text
    assert "retrain requested by monitoring" in text
    # the retrain is gated against the champion, a broken export is rejected with its reasons
    assert "against champion v1" in text
    assert "gate: REJECT v3 against champion v2" in text
    assert "non-inferiority" in text
    assert "deploy: skipped, the champion is unchanged" in text
    # batch scoring, the rollback and its idempotent repeat, the ledger
    assert "batch scoring with champion v2" in text
    assert "outcome already_champion" in text
    # the release act through mlops-ops serve: a good canary promoted, a broken one rolled back
    assert "Releases through the online service (mlops-ops serve; the gate relaxed)" in text
    assert "deploy: v4 is the challenger (canary), champion v1" in text
    assert "answered by the challenger" in text
    assert "-> promote: v4" in text
    assert "prediction_drift: BREACH" in text
    assert "-> rollback: v5" in text
    # the outcomes act: labels two days late, joined to the batch scoring and the live traffic
    assert "Outcomes arrive 2 days late" in text
    assert "2026-03-07: outcomes of the batch scoring of 2026-03-05: 305 received -> 300 joined (300 late), " \
        "3 duplicate, 2 orphan, 0 out of window, 0 invalid" in text  # fmt: skip
    assert "outcomes of the release act's live traffic" in text
    assert "live roc_auc of v2 (whole window)" in text
    assert "estimated before labels: AUC" in text  # the CBPE estimate of the scored day
    assert "v1 leans most on" in text  # how v1 and v2 explain their predictions (SHAP)
    assert "v2 leans most on" in text
    assert "Registered model 'churn' (champion: v4)" in text
    assert "Deployment ledger: 4 record(s)" in text
    assert (tmp_path / "demo" / "airflow" / "airflow.db").exists()
    assert (tmp_path / "demo" / "mlflow.db").exists()
    reports = tmp_path / "demo" / "storage" / "churn" / "reports"
    assert list(reports.rglob("evaluate.html"))
    assert list(reports.rglob("detect_drift.html"))

    # the runs show how long they took, not the months since their logical date
    with sqlite3.connect(tmp_path / "demo" / "airflow" / "airflow.db") as db:
        starts = [row[0] for row in db.execute("SELECT start_date FROM dag_run")]
        notes = [row[0] for row in db.execute("SELECT content FROM dag_run_note")]
    # each run's note says how the demo ran it and where its whole output is
    assert len(notes) == len(starts)
    assert all("logs/demo.log" in note for note in notes)
    # dag.test() writes no task log files: the demo writes each task's part of its output where
    # Airflow's log view reads it (base_log_folder, the default log_filename_template)
    logs = tmp_path / "demo" / "airflow" / "logs"
    train_logs = sorted(logs.glob("dag_id=churn_training/run_id=*/task_id=train/attempt=*.log"))
    assert len(train_logs) >= 4, sorted(str(p) for p in logs.rglob("*.log"))[:20]
    for path in train_logs:
        text_of_task = path.read_text()
        assert "[DAG TEST] starting task_id=train" in text_of_task
        assert "task_id=evaluate" not in text_of_task
    drift_logs = list(logs.glob("dag_id=churn_monitoring/run_id=*/task_id=detect_drift/attempt=*.log"))
    assert len(drift_logs) >= 5
    assert starts
    assert all(
        dt.datetime.fromisoformat(s).replace(tzinfo=dt.UTC) >= started - dt.timedelta(minutes=1)
        for s in starts
    )

    # after the demo, the runs a person starts from the UI with the forms' defaults succeed: a
    # training run dated now (the form's logical date) with no reason, and the monitoring and
    # scoring runs the scheduler starts on unpausing (no catch-up: the latest interval, today)
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    plan = [
        {"dag_id": "churn_training"},
        {"dag_id": "churn_monitoring", "logical_date": today.isoformat()},
        {"dag_id": "churn_batch_scoring", "logical_date": today.isoformat()},
    ]
    plan_file, result_file = tmp_path / "plan.json", tmp_path / "result.json"
    plan_file.write_text(json.dumps(plan))
    embedded = {**env, **embedded_env(tmp_path / "demo")}
    run = subprocess.run(
        [sys.executable, "-m", "mlops_ops.cli", "_run-dags", str(plan_file), "--result", str(result_file)],
        capture_output=True,
        text=True,
        env=embedded,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    results = json.loads(result_file.read_text())
    assert [r["state"] for r in results] == ["success"] * 3, [(r["dag_id"], r["tasks"]) for r in results]
    assert results[0]["tasks"]["ingest"] == "success"
