"""Test set-up: an isolated Airflow home on SQLite for the whole session, an MLOPS_HOME per test.

Airflow reads its configuration when it is first imported, so the environment is set here, at
import time, before any test module imports Airflow.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SESSION = Path(tempfile.mkdtemp(prefix="mlops-ops-tests-"))
TEST_DAGS = SESSION / "dags"

os.environ.update(
    {
        "AIRFLOW_HOME": str(SESSION / "airflow"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{SESSION / 'airflow' / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(TEST_DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "MLOPS_HOME": str(SESSION / "home"),
        "MLOPS_PIPELINES": str(SESSION / "pipelines"),
        "GX_ANALYTICS_ENABLED": "False",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
        # no usage telemetry from the tests (MLflow's would try the network from every process)
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        # two pytest workers on two cores: gradient boosting's OpenMP pool would oversubscribe
        "OMP_NUM_THREADS": "1",
    }
)
for var in ("MLFLOW_TRACKING_URI", "MLOPS_STORAGE", "MLOPS_STORAGE_CONN_ID", "AIRFLOW_CONN_MLFLOW_DEFAULT"):
    os.environ.pop(var, None)

# The DAG folder the tests run: the factory over $MLOPS_PIPELINES without retries (a failing
# task must fail the run at once, not wait for a retry delay) and the repository's hand-written
# example DAG as it is.
TEST_DAGS.mkdir(parents=True)
(TEST_DAGS / "pipelines_dag.py").write_text(
    "# airflow DAG file of the tests: the DAG factory over $MLOPS_PIPELINES, retries off\n"
    "import os\n"
    "from mlops_ops.dag_factory import build_dags\n"
    "globals().update(build_dags(os.environ['MLOPS_PIPELINES'], default_args={'retries': 0}))\n"
)
shutil.copy(ROOT / "dags" / "example_existing_deployment.py", TEST_DAGS)
Path(os.environ["MLOPS_PIPELINES"]).mkdir(parents=True)
shutil.copy(ROOT / "pipelines" / "churn.yaml", os.environ["MLOPS_PIPELINES"])


# The longest files first, so that with `-n 2 --dist loadfile` no worker idles at the end.
_LONGEST_FIRST = (
    "tests/integration/test_distributed.py",
    "tests/integration/test_backfill.py",
    "tests/integration/test_s3_ledger.py",
    "tests/dags/test_demo.py",
    "tests/integration/test_executor_neutral.py",
    "tests/integration/test_scheduler.py",
    "tests/browser/test_ui.py",
    "tests/integration/test_serving.py",
    "tests/integration/test_serving_hostile.py",
    "tests/dags/test_seasonal_monitoring.py",
    "tests/integration/test_url_credentials.py",
    "tests/unit/test_drift_stats.py",
    "tests/dags/test_monitoring_e2e.py",
    "tests/integration/test_prometheus.py",
    "tests/dags/test_training_e2e.py",
    "tests/dags/test_batch_scoring.py",
    "tests/dags/test_bad_input.py",
    "tests/dags/test_gate_e2e.py",
    "tests/dags/test_rollback.py",
    "tests/dags/test_release_e2e.py",
    "tests/unit/test_release_statistics.py",
    "tests/integration/test_promotion_race.py",
    "tests/integration/test_postgres.py",
    "tests/integration/test_ingest_sources.py",
    "tests/unit/test_deploy_and_evaluate.py",
    "tests/unit/test_deploy_cas.py",
    "tests/unit/test_gate_bootstrap.py",
)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    def rank(item: pytest.Item) -> int:
        path = Path(str(item.fspath)).resolve().relative_to(ROOT).as_posix()
        return _LONGEST_FIRST.index(path) if path in _LONGEST_FIRST else len(_LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order within a file is kept


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(SESSION, ignore_errors=True)


def service_missing(what: str) -> None:
    """Skip when a service is missing, except under CI, where a missing service is a failure."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} (CI is set, so a missing service is a failure)")
    pytest.skip(what)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated Airflow metadata DB (SQLite) for dag.test()."""
    db = SESSION / "airflow" / "airflow.db"
    if not db.exists():
        (SESSION / "airflow").mkdir(parents=True, exist_ok=True)
        out = subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True
        )
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return db


@pytest.fixture
def mlops_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh MLOPS_HOME (storage, MLflow on SQLite, data) and pipelines folder for one test."""
    home = tmp_path / "home"
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir(parents=True)
    shutil.copy(ROOT / "pipelines" / "churn.yaml", pipelines)
    monkeypatch.setenv("MLOPS_HOME", str(home))
    monkeypatch.setenv("MLOPS_PIPELINES", str(pipelines))
    return home


_MLFLOW_TEMPLATE = SESSION / "mlflow-template" / "mlflow.db"


def seed_mlflow_store(home: Path) -> Path:
    """Give ``home`` an empty, migrated MLflow store (``<home>/mlflow.db``); returns ``home``.

    Migrating a new SQLite store costs seconds (tens on a loaded machine); copying a migrated one
    costs milliseconds. The template is made once per test session (per xdist worker), by MLflow
    itself, exactly as the first call on ``home`` would have made it, so a test sees the same store.
    """
    if not _MLFLOW_TEMPLATE.exists():
        from mlflow import MlflowClient

        _MLFLOW_TEMPLATE.parent.mkdir(parents=True, exist_ok=True)
        made = _MLFLOW_TEMPLATE.with_name("making.db")
        MlflowClient(tracking_uri=f"sqlite:///{made}").search_experiments(max_results=1)
        made.rename(_MLFLOW_TEMPLATE)
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "mlflow.db").exists():
        shutil.copyfile(_MLFLOW_TEMPLATE, home / "mlflow.db")
    return home


@pytest.fixture
def mlflow_store(mlops_home: Path) -> Path:
    """``mlops_home`` with an empty, migrated embedded MLflow store (see :func:`seed_mlflow_store`)."""
    return seed_mlflow_store(mlops_home)


def load_dag(dag_id: str):
    """A fresh DAG object parsed from the tests' DAG folder (operators cache their hooks)."""
    import runpy

    for path in sorted(TEST_DAGS.glob("*.py")):
        namespace = runpy.run_path(str(path))
        for value in namespace.values():
            if getattr(value, "dag_id", None) == dag_id:
                return value
    raise LookupError(dag_id)


@pytest.fixture
def dag_loader():
    return load_dag


def mlflow_client():
    from mlflow import MlflowClient

    from mlops_ops.settings import embedded_tracking_uri

    return MlflowClient(tracking_uri=embedded_tracking_uri())


def champion_version(client, name: str = "churn") -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, "champion").version)
    except Exception:
        return None


def version_count(client, name: str = "churn") -> int:
    try:
        return len(client.search_model_versions(f"name = '{name}'"))
    except Exception:
        return 0
