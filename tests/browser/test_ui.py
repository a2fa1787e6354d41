"""The Airflow UI as a person uses it: headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by selenium) against one real Airflow (API server, DAG processor,
scheduler with the LocalExecutor, PostgreSQL) after a real training run.

Checks the mlops-ops plugin (``mlops_ops/ui/``) from the outside: its routes refuse anonymous
requests and path traversal; a logged-in user finds the *ML pipelines* page in the navigation,
sees the champion and the deployment timeline, and follows a task's *Report* link to the gate
decision. Each page is saved as a screenshot under ``test-artifacts/browser/`` (git-ignored).
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

from mlops_ops.example.churn import write_training_data
from tests.conftest import ROOT, service_missing
from tests.integration.conftest import _free_port, new_database, serving
from tests.integration.local_airflow import (
    DAG_FILE,
    airflow,
    local_executor_env,
    query,
    running_airflow,
    wait,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ARTIFACTS = ROOT / "test-artifacts" / "browser"
USER, PASSWORD = "admin", "browser-test-password"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


class Site:
    """The running Airflow: its URL, environment, metadata DB and storage."""

    def __init__(self, url: str, env: dict, dsn: str, home: Path, run_id: str, procs: dict, logs: list):
        self.url, self.env, self.dsn, self.home, self.run_id = url, env, dsn, home, run_id
        self.procs, self.logs = procs, logs

    def get(self, path: str, token: str | None = None) -> tuple[int, bytes]:
        """GET ``path`` (sent as is, percent-escapes kept); the status and body, errors included."""
        request = urllib.request.Request(self.url + path)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=60) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def token(self) -> str:
        body = json.dumps({"username": USER, "password": PASSWORD}).encode()
        request = urllib.request.Request(
            self.url + "/auth/token", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as resp:
            return json.loads(resp.read())["access_token"]

    def finished_runs(self, dag_id: str) -> list[tuple[str, str]]:
        return query(
            self.dsn,
            f"SELECT run_id, state FROM dag_run WHERE dag_id = '{dag_id}' AND state IN ('success', 'failed') "
            "ORDER BY id",
        )


def _require_browser() -> None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        service_missing("selenium is not installed (pip install -e '.[dev]')")
    if not (CHROMIUM and CHROMEDRIVER):
        service_missing(
            "chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)"
        )


@pytest.fixture(scope="module")
def postgres_module_db():
    """A fresh PostgreSQL database for the module's one Airflow; dropped afterwards."""
    with new_database("mlops_ui") as url:
        yield url


@pytest.fixture(scope="module")
def site(postgres_module_db, tmp_path_factory):
    """Airflow with the churn pipeline after one successful manual training run (v1 promoted)."""
    _require_browser()
    tmp = tmp_path_factory.mktemp("ui")
    port, mlflow_port = _free_port(), _free_port()
    home, pipelines, dags = tmp / "home", tmp / "pipelines", tmp / "dags"
    for d in (pipelines, dags):
        d.mkdir()
    spec = (ROOT / "pipelines" / "churn.yaml").read_text()
    for kind in ("training", "monitoring", "scoring"):  # nothing on a timetable: only what the test starts
        spec = re.sub(rf"\n  {kind}: \"@\w+\"", f"\n  {kind}: null", spec)
    (pipelines / "churn.yaml").write_text(spec)
    (dags / "pipelines_dag.py").write_text(DAG_FILE)
    write_training_data(home / "data" / "churn" / "daily", rows=2000, seed=0)

    env = local_executor_env(
        tmp, postgres_module_db, port=port, dags=dags, home=home, pipelines=pipelines, paused=False
    )
    passwords = tmp / "passwords.json"
    passwords.write_text(json.dumps({USER: PASSWORD}))
    env.update(
        {
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "MLOPS_MLFLOW_UI_URL": f"http://127.0.0.1:{mlflow_port}",
        }
    )
    airflow(env, "db", "migrate", timeout=300)
    mlflow_ui = [
        *(sys.executable, "-m", "mlflow", "ui", "--host", "127.0.0.1", "--port", str(mlflow_port)),
        *("--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}"),
        *("--default-artifact-root", (home / "mlartifacts").as_uri()),
    ]
    mlflow_env = {**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with (
        running_airflow(env, tmp, port) as (procs, logs),
        serving(
            "mlflow ui",
            mlflow_ui,
            f"http://127.0.0.1:{mlflow_port}/health",
            tmp / "mlflow.log",
            env=mlflow_env,
        ),
    ):
        site = Site(f"http://127.0.0.1:{port}", env, postgres_module_db, home, "", procs, logs)

        def parsed():
            return query(postgres_module_db, "SELECT dag_id FROM dag WHERE dag_id = 'churn_training'")

        wait("the DAG processor to parse churn_training", parsed, 240, procs, logs)
        airflow(env, "dags", "trigger", "churn_training", "--conf", json.dumps({"reason": "browser test"}))
        runs = wait("the training run", lambda: site.finished_runs("churn_training"), 420, procs, logs)
        assert runs[0][1] == "success", (runs, (tmp / "scheduler.log").read_text()[-3000:])
        site.run_id = runs[0][0]
        # one monitoring run on today's batch: the pipeline page's drift and performance charts
        airflow(env, "dags", "trigger", "churn_monitoring")
        monitoring = wait(
            "the monitoring run", lambda: site.finished_runs("churn_monitoring"), 300, procs, logs
        )
        assert monitoring[0][1] == "success", monitoring
        yield site


@pytest.fixture(scope="module")
def browser(site):
    """Headless Chromium, logged in to the Airflow UI as the test's admin."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(site.url + "/")
        _until(driver, lambda d: d.find_elements(By.NAME, "username"), "the login form")
        driver.find_element(By.NAME, "username").send_keys(USER)
        driver.find_element(By.NAME, "password").send_keys(PASSWORD)
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        _until(driver, lambda d: "_token" in {c["name"] for c in d.get_cookies()}, "the login to finish")
        yield driver
    finally:
        driver.quit()


def _until(driver, condition, what: str, timeout: float = 90):
    """Poll ``condition(driver)`` until it is true; fail with a screenshot after ``timeout`` s."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.5).until(condition)
    except TimeoutException:
        shot = _screenshot(driver, "timeout-" + re.sub(r"\W+", "-", what))
        pytest.fail(f"timed out waiting for {what} at {driver.current_url} (screenshot {shot})")


def _screenshot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


def _report(site: Site, task_id: str, ext: str = "html") -> str:
    run = re.sub(r"[^A-Za-z0-9\-_.=]", "_", site.run_id)
    return f"/mlops/reports/churn/churn_training/{run}/{task_id}.{ext}"


def test_anonymous_requests_are_refused(site):
    token = site.token()
    for path in (
        "/mlops/",
        "/mlops/pipelines/churn",
        _report(site, "evaluate"),
        _report(site, "evaluate", "json"),
    ):
        status, body = site.get(path)
        assert status == 401, (path, status, body[:300])
        status, body = site.get(path, token="not-a-token")
        assert status in (401, 403), (path, status, body[:300])
        status, body = site.get(path, token=token)
        assert status == 200, (path, status, body[:300])
    status, body = site.get(_report(site, "evaluate", "json"), token=token)
    assert json.loads(body)["challenger_version"] == "1"


def test_no_path_traversal(site):
    token = site.token()
    storage = site.home / "storage"
    secret = "SECRET-" + uuid.uuid4().hex
    (storage / "churn" / "secret.html").write_text(secret)  # beside reports/, never served
    (storage / "secret.json").write_text(json.dumps({"secret": secret}))
    run = _report(site, "evaluate").split("/")[5]
    attempts = [
        "/mlops/reports/churn/churn_training/..%2F..%2F..%2Fsecret.html",
        f"/mlops/reports/churn/churn_training/{run}/..%2F..%2F..%2Fsecret.html",
        f"/mlops/reports/churn/..%2F..%2F/{run}/secret.html",
        "/mlops/reports/churn/churn_training/../../secret.html",
        "/mlops/reports/churn/churn_training/../secret.html",
        "/mlops/reports/churn/churn_training/%2E%2E/secret.html",
        "/mlops/reports/churn/%2E%2E/%2E%2E/secret.html",
        "/mlops/reports/%2E%2E/churn/%2E%2E/secret.json",
        f"/mlops/reports/churn/churn_training/{run}/..json",
        f"/mlops/reports/churn/churn_training/{run}/evaluate.py",
        "/mlops/pipelines/..",
        "/mlops/pipelines/%2E%2E",
    ]
    for path in attempts:
        status, body = site.get(path, token=token)
        assert secret.encode() not in body, path
        assert status in (400, 403, 404, 405), (path, status, body[:200])


def test_pipeline_page_in_the_airflow_ui(site, browser):
    from selenium.webdriver.common.by import By

    browser.get(site.url + "/")
    _until(browser, lambda d: d.find_elements(By.XPATH, "//*[text()='ML pipelines']"), "the nav entry")[
        0
    ].click()
    frame = _until(browser, lambda d: d.find_elements(By.TAG_NAME, "iframe"), "the plugin page's frame")[0]
    assert "/plugin/mlops" in browser.current_url
    browser.switch_to.frame(frame)
    try:
        _until(browser, lambda d: d.find_elements(By.LINK_TEXT, "churn"), "the pipeline list")[0].click()
        champion = _until(browser, lambda d: d.find_elements(By.ID, "champion"), "the pipeline page")[0]
        assert "version 1" in champion.text
        rows = browser.find_elements(By.CSS_SELECTOR, "#timeline tr.event.promotion")
        assert len(rows) == 1, browser.find_element(By.ID, "timeline").text
        assert "all 2 rule(s) passed" in rows[0].text
        drift = browser.find_elements(By.CSS_SELECTOR, "#drift figure.chart")
        assert {f.get_attribute("data-series") for f in drift} >= {"tenure_months", "monthly_charges"}
        assert browser.find_elements(By.CSS_SELECTOR, "#drift figure.chart circle")
        # the day's batch is below the performance check's min_rows: no value to draw, said so
        assert "No performance check with labels yet." in _text(browser)
        rollback = browser.find_element(By.ID, "rollback").get_attribute("href")
        assert rollback == f"{site.url}/dags/churn_rollback", rollback
        browser.switch_to.default_content()
        _screenshot(browser, "1-pipeline-page-in-airflow-ui")
        browser.switch_to.frame(frame)
        rows[0].find_element(By.CSS_SELECTOR, "a.report").click()
        _until(browser, lambda d: "Gate decision" in d.page_source, "the gate decision from the timeline")
        assert "/mlops/reports/churn/churn_training/" in browser.execute_script("return location.pathname")
    finally:
        browser.switch_to.default_content()
    _screenshot(browser, "2-gate-decision-from-the-timeline")


def test_report_link_of_the_task_opens_the_gate_decision(site, browser):
    from selenium.webdriver.common.by import By

    expected = _report(site, "evaluate")
    status, body = site.get(
        f"/api/v2/dags/churn_training/dagRuns/{urllib.parse.quote(site.run_id)}/taskInstances/evaluate/links",
        token=site.token(),
    )
    assert status == 200, body[:300]
    assert json.loads(body)["extra_links"]["Report"] == expected

    browser.get(f"{site.url}/dags/churn_training/runs/{site.run_id}/tasks/evaluate")
    _until(
        browser,
        lambda d: d.find_elements(By.XPATH, "(//a|//button)[normalize-space()='Details']"),
        "the Details tab",
    )[0].click()
    link = _until(browser, lambda d: d.find_elements(By.LINK_TEXT, "Report"), "the task's Report link")[0]
    assert link.get_attribute("href") == site.url + expected
    _screenshot(browser, "3-task-with-report-link")
    link.click()
    _until(browser, lambda d: "Gate decision" in d.page_source, "the gate decision")
    assert browser.current_url == site.url + expected
    assert "churn v1" in browser.title
    _screenshot(browser, "4-report-from-task-link")


def _text(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def _button(driver, text: str, what: str):
    """The last visible button reading ``text`` (a form's submit button comes after the page's)."""
    from selenium.webdriver.common.by import By

    xpath = f"//button[normalize-space()='{text}']"
    return _until(driver, lambda d: [b for b in d.find_elements(By.XPATH, xpath) if b.is_displayed()], what)[
        -1
    ]


def test_training_run_from_the_trigger_form_with_its_defaults(site, browser):
    from selenium.webdriver.common.by import By

    before = len(site.finished_runs("churn_training"))
    browser.get(f"{site.url}/dags/churn_training")
    _button(browser, "Trigger", "the Trigger button").click()
    _until(browser, lambda d: "Trigger Dag - churn_training" in _text(d), "the trigger form")
    _until(browser, lambda d: "Reason" in _text(d) and "Force training" in _text(d), "the form's parameters")
    _screenshot(browser, "5-trigger-form")
    submit = _button(browser, "Trigger", "the form's Trigger button")
    _until(browser, lambda d: submit.is_enabled(), "the form to accept its defaults (Reason empty)")
    submit.click()

    def finished():
        runs = site.finished_runs("churn_training")
        return runs[before:] if len(runs) > before else None

    runs = wait("the run triggered from the form", finished, 420, site.procs, site.logs)
    assert runs[0][1] == "success", runs
    browser.get(f"{site.url}/dags/churn_training/runs/{runs[0][0]}")
    _until(
        browser, lambda d: d.find_elements(By.XPATH, "//*[normalize-space()='Success']"), "the run's state"
    )
    _screenshot(browser, "6-run-triggered-from-the-form")


def test_mlflow_connection_form_declares_its_fields(site, browser):
    from selenium.webdriver.common.by import By

    browser.get(f"{site.url}/connections")
    _button(browser, "Add Connection", "the Add Connection button").click()
    _until(browser, lambda d: "Connection Type" in _text(d), "the connection form")
    kind = _until(
        browser, lambda d: d.find_elements(By.CSS_SELECTOR, "[role=dialog] input[role=combobox]"), "the type"
    )
    kind[0].click()
    kind[0].send_keys("MLflow")
    option = "//*[@role='option'][normalize-space()='MLflow']"
    _until(browser, lambda d: d.find_elements(By.XPATH, option), "the MLflow type")[0].click()
    _until(browser, lambda d: "Tracking server URL or host" in _text(d), "the relabelled standard fields")
    browser.find_element(By.XPATH, "//*[normalize-space()='Extra Fields']").click()
    for label in ("Tracking URI", "Registry URI", "MLflow UI URL", "Token"):
        _until(browser, lambda d, label=label: label in _text(d), f"the extra field {label}")
    _screenshot(browser, "7-mlflow-connection-form")


def test_mlflow_model_version_link_opens_the_mlflow_ui(site, browser):
    from selenium.webdriver.common.by import By

    browser.get(f"{site.url}/dags/churn_training/runs/{site.run_id}/tasks/deploy")
    xpath = "(//a|//button)[normalize-space()='Details']"
    _until(browser, lambda d: d.find_elements(By.XPATH, xpath), "the Details tab")[0].click()
    link = _until(
        browser, lambda d: d.find_elements(By.LINK_TEXT, "MLflow model version"), "the MLflow link"
    )[0]
    mlflow_url = site.env["MLOPS_MLFLOW_UI_URL"]
    assert link.get_attribute("href").startswith(mlflow_url), link.get_attribute("href")
    browser.get(link.get_attribute("href"))  # the link opens a new tab; the same page here
    _until(browser, lambda d: "Version 1" in _text(d), "the model version page")
    _until(browser, lambda d: "champion" in _text(d), "the champion alias")
    _screenshot(browser, "8-mlflow-model-version")
