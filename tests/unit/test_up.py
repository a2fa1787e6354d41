"""`mlops-ops up` as a new user meets it: the DAGs it installs, the MLflow links on the port it was
given, and a stop (Ctrl-C or SIGTERM) that leaves no process of it running.

The supervision is tested on small real processes standing in for `airflow standalone` and
`mlflow ui` (a leader that starts a child, as standalone does): the real ones need minutes and
gigabytes on this machine and are started by the browser tests.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mlops_ops import embedded

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="process groups are POSIX")


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as stopped)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return "\nState:\tZ" not in status


def _wait_for(condition, what: str, deadline: float = 60.0) -> None:
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


LEADER = textwrap.dedent(
    """
    import subprocess, sys, time, pathlib
    out = pathlib.Path(sys.argv[1])
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    out.write_text(f"{child.pid}")
    time.sleep(600)
    """
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_up_stops_every_process_it_started(tmp_path, sig):
    leaders = []
    for name in ("mlflow", "airflow"):
        script = tmp_path / f"{name}.py"
        script.write_text(LEADER)
        leaders.append([sys.executable, str(script), str(tmp_path / f"{name}.pid")])
    supervisor = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import json, os, sys; from mlops_ops.embedded import supervise; "
            "sys.exit(supervise(json.loads(sys.argv[1]), dict(os.environ), grace=10))",
            __import__("json").dumps(leaders),
        ],
    )
    try:
        pid_files = [tmp_path / "mlflow.pid", tmp_path / "airflow.pid"]
        _wait_for(lambda: all(p.exists() and p.read_text() for p in pid_files), "both leaders' children")
        children = [int(p.read_text()) for p in pid_files]
        assert all(_alive(pid) for pid in children)
        supervisor.send_signal(sig)
        assert supervisor.wait(timeout=60) == 0
        _wait_for(lambda: not any(_alive(pid) for pid in children), "the children to stop")
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
        for p in tmp_path.glob("*.pid"):
            if p.read_text() and _alive(int(p.read_text())):
                os.kill(int(p.read_text()), signal.SIGKILL)


def test_when_one_service_exits_up_stops_the_other_and_reports_its_status(tmp_path):
    sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
    failing = [sys.executable, "-c", "import sys; sys.exit(3)"]
    started = time.monotonic()
    assert embedded.supervise([sleeper, failing], dict(os.environ), grace=10) == 3
    assert time.monotonic() - started < 60  # the sleeper was stopped, not waited for


def test_up_points_the_tasks_and_the_mlflow_links_at_the_ports_it_was_given(tmp_path, monkeypatch):
    monkeypatch.delenv("MLOPS_MLFLOW_UI_URL", raising=False)
    monkeypatch.delenv("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", raising=False)
    monkeypatch.delenv("AIRFLOW__API__HOST", raising=False)
    env = embedded.up_env(tmp_path, airflow_port=18480, mlflow_port=18481)
    assert env["MLOPS_MLFLOW_UI_URL"] == "http://localhost:18481"
    assert env["AIRFLOW__API__PORT"] == "18480"
    # the task processes find the API server on that port (Airflow's default is 8080 whatever the port)
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://localhost:18480/execution/"
    # the UI listens on this machine only, like MLflow's (Airflow's default: every interface)
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1"
    # what the task links are built from, in the environment the tasks get
    for key in ("MLOPS_MLFLOW_UI_URL", "MLFLOW_TRACKING_URI", "MLOPS_HOME"):
        monkeypatch.setenv(key, env[key])
    from mlops_ops.hooks.mlflow import MlflowHook

    assert MlflowHook().run_url("1", "abc").startswith("http://localhost:18481/")
    # a URL the user set (a proxy in front of MLflow, say) is kept
    monkeypatch.setenv("MLOPS_MLFLOW_UI_URL", "https://mlflow.example.org")
    monkeypatch.setenv("AIRFLOW__API__HOST", "0.0.0.0")
    env = embedded.up_env(tmp_path, airflow_port=1, mlflow_port=2)
    assert env["MLOPS_MLFLOW_UI_URL"] == "https://mlflow.example.org"
    assert env["AIRFLOW__API__HOST"] == "0.0.0.0"


def test_up_installs_the_pipelines_and_the_hand_written_example_dag(tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    embedded.install_example(tmp_path, overwrite=False)
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    bag = DagBag(dag_folder=str(tmp_path / "dags"), safe_mode=True)
    assert bag.import_errors == {}
    churn = {f"churn_{kind}" for kind in ("training", "monitoring", "batch_scoring", "rollback")}
    assert set(bag.dag_ids) == churn | {"example_existing_deployment"}


def test_mlflow_informational_lines_do_not_go_to_stderr_in_the_embedded_environment(tmp_path):
    """Airflow shows a task's stderr as ERROR lines: MLflow's INFO lines must not be written there."""
    env = {**os.environ, **embedded.embedded_env(tmp_path)}
    code = (
        "import logging, mlflow; logging.basicConfig(level=logging.INFO, stream=__import__('sys').stdout); "
        "logging.getLogger('mlflow.test').info('informational line')"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "informational line" in out.stdout
    assert "informational line" not in out.stderr


@pytest.mark.slow
def test_mlflow_messages_in_a_task_are_logged_at_their_level_not_written_to_stderr(
    tmp_path, monkeypatch, capfd
):
    """Real MLflow on SQLite: registering a model prints "Successfully registered model" to stderr
    (MLflow's eprint), which Airflow's supervisor shows as an ERROR line; through the hook it is an
    INFO record of the logger ``mlflow``."""
    import mlflow
    import mlflow.sklearn

    from mlops_ops.hooks.mlflow import MlflowHook

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    from sklearn.dummy import DummyClassifier

    hook = MlflowHook()
    hook.get_conn()
    experiment = hook.ensure_experiment("routing")
    model = DummyClassifier().fit([[0], [1]], [0, 1])
    records: list[logging.LogRecord] = []
    collector = logging.Handler(logging.DEBUG)
    collector.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("mlflow").addHandler(collector)
    capfd.readouterr()
    try:
        with mlflow.start_run(experiment_id=experiment) as run:
            mlflow.sklearn.log_model(
                model, name="model", registered_model_name="routing", pip_requirements=["scikit-learn"]
            )
            mlflow.log_dict({"a": 1}, "doc.json")
        # reading artifacts back, as evaluation and monitoring do, draws no progress bar on stderr
        hook.load_dict(run.info.run_id, "doc.json")
    finally:
        logging.getLogger("mlflow").removeHandler(collector)
    err = capfd.readouterr().err
    assert "registered model" not in err.lower(), err
    assert "Downloading artifacts" not in err, err
    registered = [r for r in records if "Successfully registered model 'routing'" in r.getMessage()]
    assert [r.levelno for r in registered] == [logging.INFO]
