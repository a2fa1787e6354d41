"""The deployment ledger's claim on S3: a conditional put (``If-None-Match: *``) against a real
S3 server process (moto's server mode), reached through Airflow's ObjectStoragePath and an
``aws`` connection carrying ``endpoint_url``.

* Two OS processes promote two challengers at once, many rounds, with the ledger on ``s3://``
  and the registry on a real ``mlflow server``: exactly one wins each round, the loser is refused,
  and the S3 ledger and the MLflow alias agree after every round.
* A small real HTTP proxy in front of moto stands in for S3 servers that behave differently:
  one refusing the put with 409 ``ConditionalRequestConflict`` or a bare 412 (a lost claim), one
  without conditional writes (501 ``NotImplemented``), one that silently drops the header (must
  be detected, never let two writers win), one failing with 503 (a transient fault that
  propagates so Airflow retries), and no server at all (connection refused).
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import logging
import multiprocessing
import os
import socket
import sys
import threading
import traceback
import uuid
from collections import defaultdict
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from tests.load import busy_cpu

# The racing processes import this module: it must not import tests.conftest, which resets the
# environment (MLOPS_STORAGE, connections) at import time.
S3_CREDENTIALS = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "region_name": "us-east-1",
}

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: rounds of the race (each costs tens of seconds on a loaded machine); raise it to measure more
ROUNDS = int(os.environ.get("MLOPS_S3_RACE_ROUNDS", "20"))
LOST_AT_CLAIM = "claimed by another promotion first"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _use_s3(monkeypatch, endpoint_url: str) -> str:
    """Define an Airflow ``aws`` connection (AIRFLOW_CONN_*) for the S3 server at ``endpoint_url``;
    returns its id, new for each call (Airflow caches one filesystem per connection id).

    One attempt per request: the transient-fault tests need the fault itself, not botocore's retries.
    """
    conn_id = f"s3_it_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", _aws_connection(endpoint_url))
    return conn_id


def _aws_connection(endpoint_url: str) -> str:
    return json.dumps(
        {
            "conn_type": "aws",
            "login": S3_CREDENTIALS["aws_access_key_id"],
            "password": S3_CREDENTIALS["aws_secret_access_key"],
            "extra": {
                "endpoint_url": endpoint_url,
                "region_name": S3_CREDENTIALS["region_name"],
                "config_kwargs": {"retries": {"max_attempts": 1, "mode": "standard"}},
            },
        }
    )


def _create_bucket(endpoint_url: str) -> str:
    import boto3

    name = f"mlops-it-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint_url, **S3_CREDENTIALS).create_bucket(Bucket=name)
    return name


# -- a serial S3 server for the race ----------------------------------------------------------------

_SERIAL_MOTO = """
import sys
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
run_simple("127.0.0.1", int(sys.argv[1]), DomainDispatcherApplication(create_backend_app),
           threaded=False, request_handler=MotoRequestHandler)
"""


@pytest.fixture
def serial_s3_server(tmp_path) -> Iterator[str]:
    """moto's S3 server answering one request at a time; yields its endpoint URL.

    Why not the shared ``s3_server`` fixture: moto's threaded server checks ``If-None-Match`` and
    then stores the object in two steps, so two puts handled by two threads at the same moment can
    both pass the check (measured here: 4 rounds of 1,000 with two winners, on a loaded machine).
    AWS S3 decides a conditional put atomically. Serving one request at a time gives moto the same
    atomicity; the race between the two promoting processes is untouched (each sends its put as
    soon as it is ready, and the server decides which came first).
    """
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    from tests.integration.conftest import serving  # here, not at import: see S3_CREDENTIALS

    command = [sys.executable, "-c", _SERIAL_MOTO, str(port)]
    with serving(
        "moto server (serial)", command, f"{url}/moto-api/", tmp_path / "moto-serial.log", timeout=60
    ):
        yield url


# -- the race ---------------------------------------------------------------------------------------


class _TI(SimpleNamespace):
    def xcom_push(self, key, value):
        self.pushed[key] = value


def _deploy(version, baseline, run_id):
    from mlops_ops.operators.deploy import DeployModelOperator

    decision = {
        "promote": True,
        "status": "promote",
        "challenger_version": version,
        "baseline_version": baseline,
        "reasons": ["race"],
        "metrics": {},
        "champion_metrics": None,
        "report_uri": None,
    }
    op = DeployModelOperator(task_id="deploy", pipeline="churn", decision=decision)
    context = {
        "ti": _TI(dag_id="churn_training", run_id=run_id, task_id="deploy", pushed={}),
        "outlet_events": defaultdict(SimpleNamespace),
    }
    return op, context


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _racer(name, start, at_claim, tasks, results):
    """One deploy process: for each round, wait at ``start``, then run DeployModelOperator.execute().

    In rounds marked ``aligned`` the process also waits at ``at_claim`` right before its first
    ledger claim, so both processes have planned the same sequence number and send their
    conditional puts together: the S3 server alone decides. Other rounds are a free race.
    """
    from airflow.sdk.exceptions import AirflowFailException

    from mlops_ops.hooks.storage import DeploymentLedger

    real_claim = DeploymentLedger.claim
    state = {"aligned": False, "claims": []}

    def claim(self, document):
        if state["aligned"] and not state["claims"]:
            at_claim.wait(timeout=120)
        won = real_claim(self, document)
        state["claims"].append(won)
        return won

    DeploymentLedger.claim = claim  # this process only: it is ours
    logger = logging.getLogger("mlops_ops.hooks.mlflow")
    logger.setLevel(logging.INFO)
    collect = _Collect()
    logger.addHandler(collect)
    while True:
        task = tasks.get()
        if task is None:
            return
        version, expected, run_id, aligned = task
        op, context = _deploy(version, expected, run_id)
        collect.messages.clear()
        state["aligned"], state["claims"] = aligned, []
        try:
            _ = op.mlflow_hook.client  # connect before the barrier: the race is the promotion itself
            start.wait(timeout=120)
            outcome = ("won", op.execute(context))
        except AirflowFailException as err:
            outcome = ("refused", str(err))
        except Exception:
            outcome = ("error", traceback.format_exc())
        results.put(
            {
                "name": name,
                "version": version,
                "outcome": outcome,
                "claims": list(state["claims"]),
                "lost_logged": any(LOST_AT_CLAIM in m for m in collect.messages),
            }
        )


def _ledger():
    from mlops_ops.hooks.storage import DeploymentLedger, PipelineStorage

    return DeploymentLedger(PipelineStorage("churn"))


def test_two_processes_racing_on_s3_exactly_one_wins_each_round(
    airflow_db, mlops_home, mlflow_server, serial_s3_server, monkeypatch
):
    from mlflow import MlflowClient

    bucket = _create_bucket(serial_s3_server)
    monkeypatch.setenv("MLOPS_STORAGE", f"s3://{bucket}/mlops")
    monkeypatch.setenv("MLOPS_STORAGE_CONN_ID", _use_s3(monkeypatch, serial_s3_server))
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps({"conn_type": "mlflow", "host": mlflow_server})
    )
    client = MlflowClient(tracking_uri=mlflow_server)
    client.create_registered_model("churn")
    run = client.create_run(client.create_experiment("churn"))
    versions = [
        str(
            client.create_model_version(
                "churn", f"{run.info.artifact_uri}/model", run_id=run.info.run_id
            ).version
        )
        for _ in range(1 + 2 * ROUNDS)
    ]
    op, context = _deploy(versions[0], None, "manual__first")
    first = op.execute(context)
    # ObjectStoragePath names the connection in the URI: s3://<conn_id>@<bucket>/...
    assert first["ledger_uri"].startswith("s3://"), first
    assert f"{bucket}/mlops/churn/deployments/" in first["ledger_uri"], first
    champion = versions[0]

    ctx = multiprocessing.get_context("spawn")
    start, at_claim = ctx.Barrier(2), ctx.Barrier(2)
    results = ctx.Queue()
    queues = {name: ctx.Queue() for name in ("a", "b")}
    racers = [
        ctx.Process(target=_racer, args=(name, start, at_claim, queue, results), daemon=True)
        for name, queue in queues.items()
    ]
    for r in racers:
        r.start()
    figures = {"wins": {"a": 0, "b": 0}, "lost_claims": 0, "duplicates": 0, "aligned_rounds": 0}
    load = contextlib.ExitStack()
    try:
        # a busy process per core beside the race: a loaded machine stretches every window
        load.enter_context(busy_cpu())
        for round_ in range(ROUNDS):
            aligned = round_ % 2 == 1
            figures["aligned_rounds"] += aligned
            challengers = {"a": versions[1 + 2 * round_], "b": versions[2 + 2 * round_]}
            for name, queue in queues.items():
                queue.put((challengers[name], champion, f"manual__{round_}_{name}", aligned))
            outcomes = [results.get(timeout=300) for _ in queues]
            errors = [o for o in outcomes if o["outcome"][0] == "error"]
            assert not errors, errors[0]["outcome"][1]
            won = [o for o in outcomes if o["outcome"][0] == "won"]
            refused = [o for o in outcomes if o["outcome"][0] == "refused"]
            claims_won = sum(c for o in outcomes for c in o["claims"])
            figures["duplicates"] += claims_won > 1
            figures["lost_claims"] += sum(not c for o in outcomes for c in o["claims"])
            assert claims_won == 1, f"round {round_}: {claims_won} exclusive creates succeeded: {outcomes}"
            assert len(won) == 1, outcomes
            assert len(refused) == 1, outcomes
            winner, loser = won[0], refused[0]
            assert "champion changed since evaluation" in loser["outcome"][1]
            assert "outside mlops-ops" not in loser["outcome"][1], "a promotion in flight is not a hand move"
            if aligned:  # both planned the same seq: the loser's conditional put was refused
                assert loser["claims"] == [False], loser
                assert loser["lost_logged"], loser
            assert winner["outcome"][1]["previous_version"] == champion

            # the S3 ledger and the MLflow alias agree
            alias = str(client.get_model_version_by_alias("churn", "champion").version)
            assert alias == winner["version"]
            state = _ledger().read()
            assert len(state.records) == round_ + 2, "exactly one new ledger record per round"
            seqs = [r.seq for r in state.records]
            assert len(set(seqs)) == len(seqs), f"two records share a seq: {seqs}"
            head = state.head
            assert (head.version, head.previous_version, head.seq) == (alias, champion, round_ + 2)
            assert state.live_claim is None, "the winner's claim is recorded"
            assert not [r for r in state.records if r.version == loser["version"]]
            assert "mlops.promoted_at" not in client.get_model_version("churn", loser["version"]).tags
            figures["wins"][winner["name"]] += 1
            champion = alias
    finally:
        load.close()
        for queue in queues.values():
            queue.put(None)
        for r in racers:
            r.join(timeout=60)
            if r.is_alive():
                r.terminate()
    assert figures["duplicates"] == 0
    assert figures["lost_claims"] >= figures["aligned_rounds"]
    print(
        f"\nS3 race, {ROUNDS} rounds ({figures['aligned_rounds']} aligned at the conditional put): "
        f"process a won {figures['wins']['a']}, process b won {figures['wins']['b']}; "
        f"{figures['lost_claims']} lost claims (conditional put refused); "
        f"{figures['duplicates']} duplicates"
    )


# -- servers that behave differently: a proxy in front of moto ----------------------------------------

_S3_ERROR = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
    "{extra}<RequestId>proxy</RequestId></Error>"
)


class _Proxy(http.server.ThreadingHTTPServer):
    """A real HTTP proxy in front of an S3 server, changing how conditional puts are answered.

    ``mode``: ``"pass"`` (forward everything), ``"drop"`` (remove ``If-None-Match`` from every
    request: a server that ignores the header), ``"501"`` (answer conditional puts 501
    NotImplemented: a server without conditional writes), or ``(status, code, extra)`` answered
    to conditional puts whose key ends with ``target``. Counts the conditional puts it saw.
    """

    daemon_threads = True

    def __init__(self, upstream: str):
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.upstream = upstream.removeprefix("http://")
        self.mode: object = "pass"
        self.target = ""
        self.conditional_puts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Proxy

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass

    def _relay(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
        conditional = self.command == "PUT" and "If-None-Match" in self.headers
        mode = self.server.mode
        if conditional:
            self.server.conditional_puts += 1
            if mode == "drop":
                headers = {k: v for k, v in headers.items() if k.lower() != "if-none-match"}
            elif mode == "501":
                return self._error(
                    501, "NotImplemented", "A header you provided implies unimplemented functionality"
                )
            elif isinstance(mode, tuple) and self.path.split("?")[0].endswith(self.server.target):
                status, code, extra = mode
                return self._error(status, code, "refused by the test proxy", extra)
        upstream = http.client.HTTPConnection(self.server.upstream, timeout=60)
        try:
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            reply = upstream.getresponse()
            data = reply.read()
            self.send_response(reply.status)
            for key, value in reply.getheaders():
                if key.lower() not in ("connection", "transfer-encoding", "content-length"):
                    self.send_header(key, value)
            # a HEAD reply carries the object's length, not the length of its (empty) body
            length = reply.getheader("Content-Length", "0") if self.command == "HEAD" else len(data)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        finally:
            upstream.close()

    def _error(self, status: int, code: str, message: str, extra: str = "") -> None:
        data = _S3_ERROR.format(code=code, message=message, extra=extra).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay


@pytest.fixture
def proxied_s3(s3_server, monkeypatch) -> Iterator[SimpleNamespace]:
    """An S3 server behind :class:`_Proxy`, and an Airflow connection pointing at the proxy.

    The proxy stands in for S3 servers that answer conditional puts differently from moto (moto
    does not check request signatures, so a header the proxy drops is not noticed there).
    Yields ``proxy``, ``bucket`` and ``conn_id``.
    """
    bucket = _create_bucket(s3_server)
    proxy = _Proxy(s3_server)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield SimpleNamespace(proxy=proxy, bucket=bucket, conn_id=_use_s3(monkeypatch, proxy.url))
    finally:
        proxy.shutdown()
        proxy.server_close()
        thread.join(timeout=10)


def _claims_dir(s3):
    from mlops_ops.hooks.storage import to_path

    return to_path(f"s3://{s3.bucket}/mlops/churn/deployments/claims", s3.conn_id)


def _names(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_claim_through_an_honest_server_wins_once_and_cleans_its_probe(proxied_s3):
    from mlops_ops.hooks.storage import create_exclusive

    proxy, claims = proxied_s3.proxy, _claims_dir(proxied_s3)
    assert create_exclusive(claims / "00000001.json", b'{"seq": 1}') is True
    assert create_exclusive(claims / "00000001.json", b'{"seq": 1, "other": true}') is False
    assert (claims / "00000001.json").read_bytes() == b'{"seq": 1}'
    assert _names(claims) == ["00000001.json"], "the conditional-write probes are deleted"
    assert proxy.conditional_puts == 6  # per create: two probe puts and the claim


@pytest.mark.parametrize(
    ("status", "code", "extra"),
    [
        (412, "PreconditionFailed", "<Condition>If-None-Match</Condition>"),
        (412, "PreconditionFailed", ""),  # a server that does not say which condition failed
        (409, "ConditionalRequestConflict", ""),  # a concurrent conditional write to the name
    ],
    ids=["412", "412-no-condition", "409"],
)
def test_a_refused_conditional_put_is_a_lost_claim(proxied_s3, status, code, extra):
    from mlops_ops.hooks.storage import create_exclusive

    proxy, claims = proxied_s3.proxy, _claims_dir(proxied_s3)
    proxy.mode, proxy.target = (status, code, extra), "/claims/00000001.json"
    assert create_exclusive(claims / "00000001.json", b'{"seq": 1}') is False
    assert _names(claims) == [], "nothing written, probes deleted"


def test_a_server_without_conditional_writes_fails_clearly(proxied_s3):
    from mlops_ops.errors import ConditionalWriteUnsupportedError, is_verdict
    from mlops_ops.hooks.storage import create_exclusive

    proxy, claims = proxied_s3.proxy, _claims_dir(proxied_s3)
    proxy.mode = "501"
    with pytest.raises(ConditionalWriteUnsupportedError, match="cannot create .* exclusively") as err:
        create_exclusive(claims / "00000001.json", b'{"seq": 1}')
    assert "HTTP 501 NotImplemented" in str(err.value)
    assert "If-None-Match" in str(err.value)
    assert isinstance(err.value, NotImplementedError)
    assert not is_verdict(err.value)
    assert _names(claims) == []


def test_a_server_that_ignores_the_condition_is_detected_before_any_claim(proxied_s3):
    """The proxy drops ``If-None-Match``: every put succeeds, so two writers would both "win"."""
    from mlops_ops.errors import ConditionalWriteUnsupportedError
    from mlops_ops.hooks.storage import create_exclusive

    proxy, claims = proxied_s3.proxy, _claims_dir(proxied_s3)
    proxy.mode = "drop"
    for _ in range(2):  # the second writer is refused just the same: neither wins
        with pytest.raises(ConditionalWriteUnsupportedError, match="ignores the condition"):
            create_exclusive(claims / "00000001.json", b'{"seq": 1}')
    assert _names(claims) == [], "no claim written, probe deleted"


def test_deploy_through_a_server_that_ignores_the_condition_fails_and_keeps_the_champion(
    proxied_s3, airflow_db, mlflow_store, monkeypatch
):
    from airflow.sdk.exceptions import AirflowFailException

    from tests.conftest import champion_version, mlflow_client

    proxy = proxied_s3.proxy
    monkeypatch.setenv("MLOPS_STORAGE", f"s3://{proxied_s3.bucket}/mlops")
    monkeypatch.setenv("MLOPS_STORAGE_CONN_ID", proxied_s3.conn_id)
    client = mlflow_client()
    client.create_registered_model("churn")
    run = client.create_run(client.create_experiment("churn"))
    v1, v2 = (
        str(
            client.create_model_version(
                "churn", f"{run.info.artifact_uri}/model", run_id=run.info.run_id
            ).version
        )
        for _ in range(2)
    )
    op, context = _deploy(v1, None, "manual__1")
    op.execute(context)
    proxy.mode = "drop"
    op, context = _deploy(v2, v1, "manual__2")
    with pytest.raises(AirflowFailException, match="impossible: .*ignores the condition"):
        op.execute(context)
    assert champion_version(client) == v1
    assert _ledger().read().head.version == v1
    assert _names(_claims_dir(proxied_s3)) == ["00000001.json"]


def test_a_5xx_on_the_conditional_put_propagates_for_a_retry(proxied_s3):
    from mlops_ops.errors import is_verdict
    from mlops_ops.hooks.storage import create_exclusive

    proxy, claims = proxied_s3.proxy, _claims_dir(proxied_s3)
    proxy.mode, proxy.target = (503, "ServiceUnavailable", ""), "/claims/00000001.json"
    with pytest.raises(Exception) as err:  # noqa: PT011 - whatever s3fs raises, it must not be a verdict
        create_exclusive(claims / "00000001.json", b'{"seq": 1}')
    assert not isinstance(err.value, (NotImplementedError, FileExistsError)), err.value
    assert not is_verdict(err.value), err.value
    proxy.mode = "pass"  # the retry succeeds
    assert create_exclusive(claims / "00000001.json", b'{"seq": 1}') is True


def test_connection_refused_propagates_for_a_retry(s3_server, monkeypatch):
    from mlops_ops.errors import is_verdict
    from mlops_ops.hooks.storage import create_exclusive, to_path

    bucket = _create_bucket(s3_server)
    conn_id = _use_s3(monkeypatch, f"http://127.0.0.1:{_free_port()}")  # nothing listens there
    path = to_path(f"s3://{bucket}/mlops/churn/deployments/claims/00000001.json", conn_id)
    with pytest.raises(Exception) as err:  # noqa: PT011 - whatever s3fs raises, it must not be a verdict
        create_exclusive(path, b'{"seq": 1}')
    assert not isinstance(err.value, (NotImplementedError, FileExistsError)), err.value
    assert not is_verdict(err.value), err.value
