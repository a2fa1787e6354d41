"""The online service against a hostile client: one real ``mlops-ops serve`` process (uvicorn) for
the module, real HTTP, a churn model trained by the project's training DAG, a real prediction log.

Every request here once got a 500, a silent wrong answer, or a refusal MLflow's scoring server does
not make; each now gets the answer below. The prediction log's storage is broken by putting a file
where its folder should be (the tests run as root, where file modes do not stop a write).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import shutil
import signal
import sys
import time
import zlib
from pathlib import Path

import httpx
import pytest

from mlops_ops.example.churn import generate
from tests.integration.conftest import _free_port, serving, trained_churn

pytestmark = [pytest.mark.slow, pytest.mark.integration]

LOG_BOUND = 40  # --log-max-buffered-rows: rows waiting on broken storage before a 503


@pytest.fixture(scope="module")
def server(airflow_db, tmp_path_factory):
    """``mlops-ops serve churn`` on a trained champion; yields (base URL, MLOPS_HOME, process)."""
    root = tmp_path_factory.mktemp("hostile")
    home, pipelines = trained_churn(root)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MLOPS_HOME": str(home), "MLOPS_PIPELINES": str(pipelines)}
    command = [
        sys.executable, "-m", "mlops_ops.cli", "serve", "churn", "--port", str(port),
        "--log-max-seconds", "0.5", "--log-max-buffered-rows", str(LOG_BOUND),
    ]  # fmt: skip
    with serving("mlops-ops serve (hostile)", command, f"{url}/ping", root / "serve.log", env=env) as proc:
        yield url, home, proc


@pytest.fixture(scope="module")
def client():
    with httpx.Client(timeout=60) as c:
        yield c


def row() -> dict:
    record = json.loads(generate(1, seed=3).drop(columns=["churned"]).to_json(orient="records"))[0]
    record["data_usage_gb"] = record["data_usage_gb"] if record["data_usage_gb"] is not None else 12.5
    record["region"] = record["region"] or "north"
    return record


def post(client: httpx.Client, url: str, body: bytes, **headers: str) -> httpx.Response:
    headers = {"Content-Type": "application/json", **{k.replace("_", "-"): v for k, v in headers.items()}}
    return client.post(f"{url}/invocations", content=body, headers=headers)


def _records(text: str) -> bytes:
    return b'{"dataframe_records": [' + text.encode() + b"]}"


def _with(field: str, raw: str) -> bytes:
    """One good row whose ``field`` is the raw JSON text ``raw`` (as a hostile client writes it)."""
    good = json.dumps({k: v for k, v in row().items() if k != field})
    return _records(good[:-1] + f', "{field}": {raw}}}')


HOSTILE = [  # (name, body, status, words the message must hold)
    ("key twice in a row", lambda: _with("tenure_months", '1, "tenure_months": 50'), 400, ["tenure_months", "more than once"]),
    ("format key twice", lambda: b'{"dataframe_records": [], "dataframe_records": []}', 400, ["dataframe_records", "more than once"]),
    ("unpaired surrogate escape", lambda: _with("contract", '"\\ud800"'), 400, ["surrogate", "Unicode"]),
    ("unpaired surrogate as a key", lambda: _records('{"\\udfff": 1}'), 400, ["surrogate"]),
    ("unpaired surrogate raw bytes", lambda: _with("region", '"x"').replace(b'"x"', b'"\xed\xa0\x80"'), 400, ["surrogate"]),
    ("nesting 100000 deep", lambda: b"[" * 100_000 + b"]" * 100_000, 400, ["too deeply"]),
    ("nesting inside a row", lambda: _with("region", "[" * 50_000 + "]" * 50_000), 400, ["too deeply"]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "make", "status", "words"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_a_hostile_body_gets_a_4xx_naming_what_is_wrong(server, client, name, make, status, words):
    url, _, _ = server
    resp = post(client, url, make())
    assert resp.status_code == status, resp.text
    message = resp.json()["message"]
    for word in words:
        assert word in message, (word, message)
    assert post(client, url, _records(json.dumps(row()))).status_code == 200  # and the service goes on


def test_csv_and_compressed_bodies_are_answered_as_mlflow_answers_them(server, client):
    url, _, _ = server
    rows = [row(), {**row(), "tenure_months": 40}]
    cols = list(rows[0])
    expected = post(client, url, json.dumps({"dataframe_records": rows}).encode())
    assert expected.status_code == 200, expected.text
    want = [r["probability"] for r in expected.json()["predictions"]]

    csv = ",".join(cols) + "\n" + "\n".join(",".join(str(r[c]) for c in cols) for r in rows) + "\n"
    resp = post(client, url, csv.encode(), Content_Type="text/csv")
    assert resp.status_code == 200, resp.text
    assert [r["probability"] for r in resp.json()["predictions"]] == want
    json_body = json.dumps({"dataframe_records": rows}).encode()
    resp = post(client, url, gzip.compress(json_body), Content_Encoding="gzip")
    assert resp.status_code == 200, resp.text
    assert [r["probability"] for r in resp.json()["predictions"]] == want
    resp = post(client, url, zlib.compress(json_body), Content_Encoding="deflate")
    assert [r["probability"] for r in resp.json()["predictions"]] == want

    def bad(body: bytes, status: int, *words: str, **headers: str) -> None:
        resp = post(client, url, body, **headers)
        assert resp.status_code == status, resp.text
        for word in words:
            assert word in resp.json()["message"]

    bomb = gzip.compress(b" " * (64 << 20))  # 64 MiB of spaces in 64 KiB: never inflated whole
    bad(bomb, 413, "exceeds", Content_Encoding="gzip")
    bad(json_body, 400, "not valid gzip", Content_Encoding="gzip")
    bad(gzip.compress(json_body)[:-12], 400, "gzip", Content_Encoding="gzip")
    bad(json_body, 415, "br", Content_Encoding="br")
    two = gzip.compress(json_body) + gzip.compress(b" ")  # a second member would be dropped unread
    bad(two, 400, "follows the end", Content_Encoding="gzip")
    bad(b"a,b\n1,2,3\n", 400, "line 2", "3 values", Content_Type="text/csv")
    bad(b"a,a\n1,2\n", 400, "each column once", Content_Type="text/csv")
    bad(b"tenure_months\n", 400, "no rows", Content_Type="text/csv")
    no_contract = [c for c in cols if c != "contract"]
    short = ",".join(no_contract) + "\n" + ",".join(str(rows[0][c]) for c in no_contract) + "\n"
    bad(short.encode(), 422, "contract", "missing", Content_Type="text/csv")
    bad(b"\xff\xfe", 400, "UTF-8", Content_Type="text/csv")
    bad(json_body, 415, "application/json", Content_Type="application/xml")


def test_unwritable_prediction_log_refuses_beyond_its_bound_and_loses_nothing(server, client):
    url, home, _ = server
    log_dir = home / "storage" / "churn" / "prediction_log"
    body = _records(json.dumps(row()))
    assert post(client, url, body).status_code == 200
    _poll(lambda: log_dir.is_dir() and any(log_dir.rglob("part-*.parquet")), "a first part")
    aside = log_dir.with_name("prediction_log.aside")
    log_dir.rename(aside)
    log_dir.write_text("not a folder")  # every write below it fails, even as root
    try:
        answered: list[str] = []
        refused = None
        for _ in range(LOG_BOUND * 3):
            resp = post(client, url, body)
            if resp.status_code != 200:
                refused = resp
                break
            answered.append(resp.json()["predictions"][0]["prediction_id"])
        assert refused is not None, "answered every request while nothing could be logged"
        assert refused.status_code == 503, refused.text
        assert "prediction log cannot be written" in refused.json()["message"]
        health = client.get(f"{url}/health")
        assert health.status_code == 503
        # the rows can pile up past the bound while the first failing write is still under way
        # (a slow machine): the health check names the storage's error once that write fails
        _poll(
            lambda: client.get(f"{url}/health").json()["prediction_log_error"], "the log's error in /health"
        )
        assert len(answered) >= LOG_BOUND - 1
    finally:
        log_dir.unlink()
        shutil.move(aside, log_dir)
    _poll(lambda: client.get(f"{url}/health").status_code == 200, "the service to recover")
    assert post(client, url, body).status_code == 200

    def logged() -> set:
        return set(_log(home / "storage")["prediction_id"])

    _poll(lambda: set(answered) <= logged(), "every answered row in the log")
    assert not _log(home / "storage")["prediction_id"].duplicated().any()


def test_a_graceful_stop_with_unwritable_storage_saves_the_rows_aside(server, client):
    """Last in the module: it stops the module's service."""
    url, home, proc = server
    log_dir = home / "storage" / "churn" / "prediction_log"
    aside = log_dir.with_name("prediction_log.aside")
    log_dir.rename(aside)
    log_dir.write_text("not a folder")
    try:
        resp = post(client, url, _records(",".join([json.dumps(row())] * 3)))
        assert resp.status_code == 200, resp.text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal
    finally:
        log_dir.unlink()
        shutil.move(aside, log_dir)
    saved = set(_log(home / "prediction_log_unsent")["prediction_id"])  # with earlier rows not yet written
    assert {r["prediction_id"] for r in resp.json()["predictions"]} <= saved
    assert not saved & set(_log(home / "storage")["prediction_id"])


def _log(root: Path):
    from mlops_ops.hooks.storage import PipelineStorage
    from mlops_ops.serving.prediction_log import read_prediction_log

    now = dt.datetime.now(dt.UTC)
    storage = PipelineStorage("churn", root=root.as_uri())
    return read_prediction_log(storage, now - dt.timedelta(hours=2), now + dt.timedelta(hours=1))


def _poll(condition, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout} s for {what}")
        time.sleep(0.2)
