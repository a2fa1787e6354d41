"""`mlops-ops demo`, as `make demo` runs it: the whole lifecycle on embedded defaults."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_demo_runs_the_lifecycle_and_prints_the_summary(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS_", "MLFLOW_"))}
    out = subprocess.run(
        [sys.executable, "-m", "mlops_ops.cli", "demo", "--home", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    text = out.stdout
    assert "gate: PROMOTE v1 against no baseline" in text
    assert "gate: REJECT v2 against champion v1" in text
    assert "deploy: skipped, the champion is unchanged" in text
    assert "Registered model 'churn' (champion: v1)" in text
    assert "Deployment ledger: 1 record(s)" in text
    assert (tmp_path / "demo" / "airflow" / "airflow.db").exists()
    assert (tmp_path / "demo" / "mlflow.db").exists()
    assert list((tmp_path / "demo" / "storage" / "churn" / "reports").rglob("evaluate.html"))
