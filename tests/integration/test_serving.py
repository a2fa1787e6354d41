"""The online service end to end: real uvicorn processes, real HTTP, a real MLflow store whose
churn model was trained by the project's training DAG (twice: v1 and v2), real storage.

One store for the module; each test starts its own service process(es) with ``mlops-ops serve``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from mlops_ops.example.churn import generate
from tests.conftest import mlflow_client
from tests.integration.conftest import _free_port, serving, trained_churn

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture(scope="module")
def store(airflow_db, tmp_path_factory):
    """An MLOPS_HOME whose churn model has two versions trained by the training DAG; champion v1."""
    home, pipelines = trained_churn(tmp_path_factory.mktemp("serving"), seeds=(0, 1))
    return home, pipelines


@pytest.fixture
def home(store, monkeypatch):
    home, pipelines = store
    monkeypatch.setenv("MLOPS_HOME", str(home))
    monkeypatch.setenv("MLOPS_PIPELINES", str(pipelines))
    client = mlflow_client()
    client.set_registered_model_alias("churn", "champion", "1")
    with contextlib.suppress(Exception):
        client.delete_registered_model_alias("churn", "challenger")
    return home


@contextlib.contextmanager
def service(home: Path, tmp: Path, *args: str, name: str = "serve"):
    """``mlops-ops serve churn`` on a free port until the block ends; yields its base URL and process."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MLOPS_HOME": str(home), "MLOPS_PIPELINES": os.environ["MLOPS_PIPELINES"]}
    command = [sys.executable, "-m", "mlops_ops.cli", "serve", "churn", "--port", str(port), *args]
    with serving(f"mlops-ops serve ({name})", command, f"{url}/ping", tmp / f"{name}.log", env=env) as proc:
        yield url, proc


def records(n: int, seed: int = 7, *, keys: bool = False) -> list[dict]:
    frame = generate(n, seed=seed).drop(columns=["churned"])
    rows = json.loads(frame.to_json(orient="records"))
    for i, row in enumerate(rows):
        row["data_usage_gb"] = row["data_usage_gb"] if row["data_usage_gb"] is not None else 12.5
        row["region"] = row["region"] or "north"
        if keys:
            row["customer_id"] = f"c-{seed}-{i}"
    return rows


def invoke(client: httpx.Client, url: str, body) -> httpx.Response:
    if isinstance(body, bytes | str):
        return client.post(f"{url}/invocations", content=body, headers={"Content-Type": "application/json"})
    return client.post(f"{url}/invocations", json=body)


def read_log(home: Path):
    from mlops_ops.hooks.storage import PipelineStorage
    from mlops_ops.serving.prediction_log import read_prediction_log

    now = dt.datetime.now(dt.UTC)
    storage = PipelineStorage("churn", root=f"file://{home}/storage")
    return read_prediction_log(storage, now - dt.timedelta(days=1), now + dt.timedelta(hours=1))


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)


def test_answers_every_protocol_shape_and_refuses_each_kind_of_bad_request_with_a_4xx(home, tmp_path):
    rows = records(3)
    cols = list(rows[0])
    with service(home, tmp_path, "--no-prediction-log") as (url, _), httpx.Client(timeout=60) as client:
        split = {"dataframe_split": {"columns": cols, "data": [[r[c] for c in cols] for r in rows]}}
        answers = []
        for body in (split, {"dataframe_records": rows}, {"instances": rows}, {"inputs": rows}):
            resp = invoke(client, url, body)
            assert resp.status_code == 200, resp.text
            answers.append(resp.json()["predictions"])
        first = answers[0]
        assert len(first) == 3
        for row in first:
            assert set(row) == {
                "prediction",
                "probability",
                "probabilities",
                "model_version",
                "arm",
                "prediction_id",
            }
            assert row["model_version"] == "1"
            assert row["arm"] == "champion"
            assert row["prediction"] in (0, 1)
            assert math.isclose(row["probabilities"]["1"], row["probability"])
        for other in answers[1:]:  # the same rows in every shape get the same scores
            assert [r["probability"] for r in other] == [r["probability"] for r in first]

        def bad(body, status, *words):
            resp = invoke(client, url, body)
            assert resp.status_code == status, (body, resp.text)
            message = resp.json()["message"]
            for word in words:
                assert word in message, (word, message)

        missing = [{k: v for k, v in r.items() if k != "tenure_months"} for r in rows]
        bad({"dataframe_records": missing}, 422, "tenure_months", "missing")
        bad(
            {"dataframe_records": [{**rows[0], "monthly_charges": "lots"}]}, 422, "monthly_charges", "numeric"
        )
        bad(
            {"dataframe_records": [{**rows[0], "contract": "lifetime"}]},
            422,
            "contract",
            "lifetime",
            "month_to_month",
        )
        bad({"dataframe_records": [{**rows[0], "tenure_months": None}]}, 422, "tenure_months", "missing")
        bad(b'{"dataframe_records": [{"tenure_months": NaN}]}', 422, "tenure_months")
        bad(b'{"dataframe_records": [{"tenure_months": Infinity}]}', 422, "tenure_months")
        bad({"dataframe_records": [{**rows[0], "tenure_monts": 3}]}, 422, "tenure_monts", "not in the schema")
        bad({"dataframe_records": [{**rows[0], "contract": ["a"]}]}, 422, "contract", "list")
        bad({"dataframe_records": [rows[0], missing[0]]}, 422, "row 1", "tenure_months")
        bad(b"", 400, "empty")
        bad(b"{not json", 400, "not valid JSON")
        bad(b"[1, 2]", 400, "JSON object")
        bad({"rows": rows}, 400, "exactly one of", "rows")
        bad({"dataframe_records": []}, 400, "no rows")
        bad({"dataframe_split": {"columns": cols, "data": [[1, 2]]}}, 400, "row 0", f"{len(cols)} values")
        bad({"dataframe_split": {"columns": ["a", "a"], "data": []}}, 400, "more than once")
        bad({"dataframe_records": rows, "params": {"k": 1}}, 400, "params")
        bad({"instances": [[1, 2]]}, 400, "list of objects")
        bad({"dataframe_records": rows * 4000}, 413, "at most")
        resp = client.post(f"{url}/invocations", content=b"a,b\n1,2", headers={"Content-Type": "text/plain"})
        assert resp.status_code == 415
        assert "application/json" in resp.json()["message"]
        booleans_and_text = {**rows[0], "tenure_months": "12", "support_calls": True}
        assert invoke(client, url, {"dataframe_records": [booleans_and_text]}).status_code == 200

        # MLflow's own client for scoring servers, unchanged
        from mlflow.pyfunc.scoring_server.client import ScoringServerClient

        host, port = url.removeprefix("http://").split(":")
        mlflow_client_ = ScoringServerClient(host, int(port))
        mlflow_client_.ping()
        frame = mlflow_client_.invoke(pd.DataFrame(rows)).get_predictions()
        assert list(frame["probability"]) == [r["probability"] for r in first]
        assert set(frame["model_version"]) == {"1"}

        assert client.get(f"{url}/health").json()["champion"] == "1"
        assert client.get(f"{url}/version").status_code == 200
        metrics = client.get(f"{url}/metrics").text
        assert (
            'mlops_serving_requests_total{arm="champion",pipeline="churn",status="200",version="1"}'
            in metrics
        )
        assert 'mlops_serving_errors_total{arm="none",pipeline="churn",status="400",version=""}' in metrics
        assert (
            'mlops_serving_errors_total{arm="champion",pipeline="churn",status="422",version="1"}' in metrics
        )
        assert "mlops_serving_model_latency_seconds_bucket" in metrics
        assert 'mlops_serving_model_info{arm="champion",pipeline="churn",version="1"} 1.0' in metrics


def test_two_canary_services_agree_on_every_keys_arm_and_shadow_never_changes_an_answer(home, tmp_path):
    mlflow_client().set_registered_model_alias("churn", "challenger", "2")
    rows = records(60, keys=True)
    canary = (
        "--strategy",
        "canary",
        "--traffic",
        "0.5",
        "--sticky-key",
        "customer_id",
        "--no-prediction-log",
    )
    with (
        service(home, tmp_path, *canary, name="canary-a") as (a, _),
        service(home, tmp_path, *canary, name="canary-b") as (b, _),
        httpx.Client(timeout=60) as client,
    ):
        by_a = [invoke(client, a, {"dataframe_records": [r]}).json()["predictions"][0] for r in rows]
        by_b = invoke(client, b, {"dataframe_records": rows}).json()["predictions"]
        assert [r["arm"] for r in by_a] == [r["arm"] for r in by_b]
        assert {r["arm"] for r in by_a} == {"champion", "challenger"}
        assert all(r["model_version"] == ("2" if r["arm"] == "challenger" else "1") for r in by_a)
    with (
        service(home, tmp_path, "--strategy", "shadow", "--sticky-key", "customer_id", name="shadow") as (
            s,
            proc,
        ),
        service(
            home,
            tmp_path,
            "--strategy",
            "direct",
            "--sticky-key",
            "customer_id",
            "--no-prediction-log",
            name="direct",
        ) as (d, _),
        httpx.Client(timeout=60) as client,
    ):
        shadowed = invoke(client, s, {"dataframe_records": rows}).json()["predictions"]
        direct = invoke(client, d, {"dataframe_records": rows}).json()["predictions"]
        strip = [{k: v for k, v in r.items() if k != "prediction_id"} for r in direct]
        assert [{k: v for k, v in r.items() if k != "prediction_id"} for r in shadowed] == strip
        assert {r["arm"] for r in shadowed} == {"champion"}
        stop(proc)
    log = read_log(home)
    ids = {r["prediction_id"] for r in shadowed}
    mine = log[log["prediction_id"].isin(ids)]
    assert sorted(mine.groupby("arm").size().items()) == [("champion", 60), ("shadow", 60)]
    shadow_rows = mine[mine["arm"] == "shadow"]
    assert (shadow_rows["model_version"] == "2").all()
    assert not shadow_rows["served"].any()
    assert mine[mine["arm"] == "champion"]["served"].all()


def test_sigterm_mid_traffic_loses_nothing_and_leaves_no_partial_file(home, tmp_path):
    rows = records(5)
    answered: list[str] = []
    failures: list[str] = []
    stop_sending = threading.Event()
    with service(home, tmp_path, "--log-max-rows", "7", "--log-max-seconds", "3600", name="sigterm") as (
        url,
        proc,
    ):

        def send():
            with httpx.Client(timeout=60) as client:
                while not stop_sending.is_set():
                    try:
                        resp = invoke(client, url, {"dataframe_records": rows})
                    except httpx.HTTPError:
                        return  # the server stopped listening
                    if resp.status_code == 200:
                        answered.extend(r["prediction_id"] for r in resp.json()["predictions"])
                    elif resp.status_code != 503:
                        failures.append(resp.text)

        senders = [threading.Thread(target=send) for _ in range(3)]
        for t in senders:
            t.start()
        deadline = time.monotonic() + 120
        while len(answered) < 60 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        # uvicorn re-raises the signal once its graceful stop is done
        assert proc.wait(timeout=120) in (0, -signal.SIGTERM)
        stop_sending.set()
        for t in senders:
            t.join(timeout=60)
    assert not failures
    assert len(answered) >= 60
    log = read_log(home)
    logged = log[log["prediction_id"].isin(set(answered))]
    assert set(answered) <= set(logged["prediction_id"])  # every answered prediction is logged
    # once per model that scored it (a shadowed row of the shadow test has a champion and a shadow row)
    assert not log.duplicated(["prediction_id", "arm"]).any()
    assert not logged["prediction_id"].duplicated().any()
    leftovers = [p for p in (home / "storage").rglob("*") if ".tmp-" in p.name]
    assert leftovers == []


def test_follows_an_alias_move_under_traffic_without_a_failed_request(home, tmp_path):
    rows = records(2)
    versions: list[str] = []
    failures: list[str] = []
    stop_sending = threading.Event()
    with service(home, tmp_path, "--poll-seconds", "0.5", "--no-prediction-log", name="follow") as (url, _):

        def send():
            with httpx.Client(timeout=60) as client:
                while not stop_sending.is_set():
                    resp = invoke(client, url, {"dataframe_records": rows})
                    if resp.status_code != 200:
                        failures.append(resp.text)
                    else:
                        versions.extend(r["model_version"] for r in resp.json()["predictions"])

        senders = [threading.Thread(target=send) for _ in range(2)]
        for t in senders:
            t.start()
        try:
            deadline = time.monotonic() + 120
            while not versions and time.monotonic() < deadline:
                time.sleep(0.05)
            mlflow_client().set_registered_model_alias("churn", "champion", "2")
            while "2" not in versions and time.monotonic() < deadline:
                time.sleep(0.05)
            seen = len(versions)
            while len(versions) < seen + 10 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            stop_sending.set()
            for t in senders:
                t.join(timeout=60)
    assert not failures
    assert versions[0] == "1"
    assert versions[-1] == "2"
