"""The library's metrics in a real Prometheus, through a real Pushgateway (docs/metrics.md).

Debian's ``prometheus`` and ``prometheus-pushgateway`` run as processes on free ports with
temporary storage. The churn pipeline's training DAG, its monitoring DAG on a drifted batch and the
retrain that follows run with ``dag.test()`` and push their metrics; then Prometheus holds the values the tasks decided,
``promtool`` accepts and unit-tests the shipped rules, the drift alert fires, every query of the
Grafana dashboard returns data, and the spec's notifier told the drift (and the retrain's
rejection, when its gate rejected).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from mlops_ops.example.churn import write_partitions
from mlops_ops.runner import run_dag
from tests.conftest import ROOT, load_dag, seed_mlflow_store, service_missing
from tests.integration.conftest import _free_port, serving

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "mlops-ops-dashboard.json"
DAY = dt.date(2026, 3, 1)  # the monitored (drifted) day
BINARIES = ("prometheus", "prometheus-pushgateway", "promtool")


def _need_binaries() -> None:
    missing = [name for name in BINARIES if shutil.which(name) is None]
    if missing:
        service_missing(
            f"{', '.join(missing)} not installed: apt-get install -y prometheus prometheus-pushgateway "
            "(.ci/run installs them)"
        )


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def _query(prometheus: str, expr: str) -> list[dict]:
    doc = _get(f"{prometheus}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
    assert doc["status"] == "success", doc
    return doc["data"]["result"]


def _poll(what: str, probe, timeout: float = 180.0):
    """``probe()`` until it returns something truthy; fails naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not seen within {timeout:.0f} s")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A Pushgateway and a Prometheus scraping it every second, evaluating the shipped rules."""
    _need_binaries()
    root = tmp_path_factory.mktemp("prometheus")
    gw_port, prom_port = _free_port(), _free_port()
    gateway = f"http://127.0.0.1:{gw_port}"
    prometheus = f"http://127.0.0.1:{prom_port}"
    shutil.copy(RULES, root / "rules.yml")
    (root / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "rule_files: [rules.yml]\n"
        "scrape_configs:\n"
        "  - job_name: pushgateway\n"
        "    honor_labels: true\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{gw_port}']}}]\n"
    )
    gw_cmd = ["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{gw_port}"]
    prom_cmd = [
        "prometheus",
        f"--config.file={root / 'prometheus.yml'}",
        f"--storage.tsdb.path={root / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{prom_port}",
    ]
    with (
        serving("prometheus-pushgateway", gw_cmd, f"{gateway}/-/ready", root / "pushgateway.log"),
        serving("prometheus", prom_cmd, f"{prometheus}/-/ready", root / "prometheus.log"),
    ):
        yield {"gateway": gateway, "prometheus": prometheus, "root": root}


@pytest.fixture(scope="module")
def pushed(stack, airflow_db, tmp_path_factory):
    """Train the churn champion, monitor a drifted day, retrain; every task pushes to the stack's
    gateway, the spec's FileNotifier tells drift and rejections."""
    root = tmp_path_factory.mktemp("pipeline")
    home, pipelines = root / "home", root / "pipelines"
    pipelines.mkdir()
    notifications = root / "notifications.jsonl"
    spec = (ROOT / "pipelines" / "churn.yaml").read_text()
    spec += (
        "\nnotifications:\n"
        "  events: [drift, rejection]\n"
        "  notifier: mlops_ops.notifiers.FileNotifier\n"
        f"  args: {{path: '{notifications}', message: 'drift: {{{{ mlops_event.summary }}}}'}}\n"
    )
    (pipelines / "churn.yaml").write_text(spec)
    daily = home / "data" / "churn" / "daily"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(home))
        mp.setenv("MLOPS_PIPELINES", str(pipelines))
        mp.setenv("MLOPS_PUSHGATEWAY_URL", stack["gateway"])
        seed_mlflow_store(home)
        write_partitions(daily, start=DAY - dt.timedelta(days=14), days=14, rows_per_day=300, seed=5)
        write_partitions(
            daily, start=DAY, days=1, rows_per_day=300, seed=5, drift_from=DAY, drift=1.5, concept=1.0
        )
        at = dt.datetime(DAY.year, DAY.month, DAY.day, tzinfo=dt.UTC)
        training = run_dag(load_dag("churn_training"), logical_date=at - dt.timedelta(days=1))
        assert training.state == "success", training.tasks
        monitoring = run_dag(load_dag("churn_monitoring"), logical_date=at)
        assert monitoring.state == "success", monitoring.tasks
        # the retrain the drift asks for, on a window with the drifted day: the gate decides
        retrain = run_dag(load_dag("churn_training"), logical_date=at + dt.timedelta(days=1))
        assert retrain.state == "success", retrain.tasks
    _scraped_after(stack, time.time())
    return {
        "training": training,
        "monitoring": monitoring,
        "retrain": retrain,
        "notifications": notifications,
    }


def _scraped_after(stack, moment: float) -> None:
    """Wait until Prometheus has scraped the gateway after ``moment`` (Unix seconds): the values
    it then holds are the last ones pushed."""

    def scraped() -> bool:
        targets = _get(f"{stack['prometheus']}/api/v1/targets")["data"]["activeTargets"]
        return any(
            t["health"] == "up" and dt.datetime.fromisoformat(t["lastScrape"]).timestamp() > moment + 0.5
            for t in targets
        )

    _poll("a scrape of the Pushgateway after the last push", scraped)


def _value(stack, expr: str) -> float:
    """The single value of ``expr`` once Prometheus has scraped it."""
    result = _poll(f"{expr} in Prometheus", lambda: _query(stack["prometheus"], expr))
    assert len(result) == 1, result
    return float(result[0]["value"][1])


def test_prometheus_holds_what_the_tasks_decided(stack, pushed):
    monitoring, training = pushed["monitoring"].returned, pushed["retrain"].returned  # the latest
    drift = monitoring["detect_drift"]
    assert drift["status"] == "drift"

    rows = _value(stack, 'mlops_ingest_rows{pipeline="churn",dag_id="churn_training"}')
    assert rows == training["ingest"]["rows"] > 0
    assert _value(stack, 'mlops_ingest_rows{dag_id="churn_monitoring",task_id="ingest_batch"}') == 300
    # the gate's latest decision; the champion is the latest version deployed
    gate = training["evaluate"]
    assert _value(stack, 'mlops_gate_promote{pipeline="churn"}') == gate["promote"]
    assert _value(stack, 'mlops_gate_challenger_version{pipeline="churn"}') == int(gate["challenger_version"])
    champion = training["deploy"]["version"] if gate["promote"] else gate["baseline_version"]
    assert _value(stack, 'mlops_champion_version{pipeline="churn"}') == int(champion)
    rejected = _query(stack["prometheus"], 'mlops_gate_last_rejection_timestamp_seconds{pipeline="churn"}')
    assert len(rejected) == (not gate["promote"])
    errors = _value(stack, 'mlops_validation_failures{dag_id="churn_training",severity="error"}')
    assert errors == training["validate"]["errors"] == 0
    warnings = _value(stack, 'mlops_validation_failures{dag_id="churn_training",severity="warning"}')
    assert warnings == training["validate"]["warnings"]
    assert _value(stack, 'mlops_drift_detected{pipeline="churn"}') == 1
    assert _value(stack, 'mlops_drift_drifted_share{pipeline="churn"}') == pytest.approx(
        drift["drifted_share"]
    )
    assert _value(stack, 'mlops_retrain_requested{pipeline="churn"}') == 1

    # every column's effect, as the drift report recorded it
    report = json.loads(open(drift["report_uri"].removeprefix("file://")).read())
    for column in report["columns"]:
        if column["effect"] is None:
            continue
        expr = f'mlops_drift_effect{{pipeline="churn",column="{column["name"]}"}}'
        assert _value(stack, expr) == pytest.approx(column["effect"]), column["name"]
    drifted = _query(stack["prometheus"], 'mlops_drift_column_drifted{pipeline="churn"} == 1')
    assert sorted(r["metric"]["column"] for r in drifted) == sorted(drift["drifted_columns"])

    performance = monitoring["check_performance"]
    live = _value(stack, f'mlops_performance_value{{pipeline="churn",metric="{performance["metric"]}"}}')
    assert live == pytest.approx(performance["value"])
    age = _value(stack, 'time() - max(mlops_monitoring_last_success_timestamp_seconds{pipeline="churn"})')
    assert 0 <= age < 3600


def test_drifted_batch_fires_the_drift_alert(stack, pushed):
    def firing():
        alerts = _get(f"{stack['prometheus']}/api/v1/alerts")["data"]["alerts"]
        return [
            a
            for a in alerts
            if a["labels"]["alertname"] == "MlopsDataDrift"
            and a["labels"].get("pipeline") == "churn"
            and a["state"] == "firing"
        ]

    (alert,) = _poll("the MlopsDataDrift alert firing", firing)
    assert "churn" in alert["annotations"]["summary"]
    # the other rules agree with the tasks' verdicts: the drifted batch's labels also changed (the
    # example's concept drift), so the champion degraded; monitoring is fresh, the gate promoted
    degraded = pushed["monitoring"].returned["check_performance"]["degraded"]
    assert degraded
    alerts = _get(f"{stack['prometheus']}/api/v1/alerts")["data"]["alerts"]
    names = {a["labels"]["alertname"] for a in alerts}
    assert "MlopsModelDegraded" in names
    assert names & {"MlopsMonitoringStale", "MlopsRepeatedRejections"} == set()


def test_promtool_accepts_and_unit_tests_the_rules(stack):
    folder = RULES.parent
    checked = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = subprocess.run(
        ["promtool", "check", "config", "--syntax-only", str(folder / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert config.returncode == 0, config.stdout + config.stderr
    tested = subprocess.run(
        ["promtool", "test", "rules", "rules_test.yml"], capture_output=True, text=True, cwd=folder
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_dashboard_query_returns_data(stack, pushed):
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert exprs
    assert all(re.search(r"\bmlops_|ALERTS", e) for e in exprs)
    for expr in exprs:
        query = expr.replace("$pipeline", "churn")
        _poll(f"data for the dashboard query {expr!r}", lambda q=query: _query(stack["prometheus"], q))


def test_the_spec_notifier_told_the_drift_and_a_rejection(pushed):
    lines = [json.loads(x) for x in pushed["notifications"].read_text().splitlines()]
    # the first gate promoted (nothing to tell); the drifted batch is told once; the retrain's
    # gate decision is told when it rejected
    rejected = not pushed["retrain"].returned["evaluate"]["promote"]
    expected = [("drift", "churn_monitoring", "detect_drift")]
    expected += [("rejection", "churn_training", "evaluate")] * rejected
    assert [(x["event"], x["dag_id"], x["task_id"]) for x in lines] == expected
    assert lines[0]["message"].startswith("drift: churn: drift against champion v1")
    if rejected:
        assert lines[1]["message"].startswith("drift: churn: the gate rejected v2; the champion stays v1")
