"""Explanations on request in serving answers, end to end: real ``mlops-ops serve`` processes, real
HTTP, a real MLflow store whose churn model (histogram gradient boosting, explained by shap's
TreeExplainer in log-odds) was trained by the project's training DAG twice (v1 and v2).

The last tests run one request through ScoringService in process, on pipelines built by the
project's training code: what the registry cannot cheaply hold (a linear version, a version shap
cannot explain) and the explainer's cache.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from mlops_ops.example.churn import generate
from tests.conftest import mlflow_client
from tests.integration.conftest import _free_port, serving, trained_churn

pytestmark = [pytest.mark.slow, pytest.mark.integration]

FIELDS = {"prediction", "probability", "probabilities", "model_version", "arm", "prediction_id"}


@pytest.fixture(scope="module")
def store(airflow_db, tmp_path_factory):
    """An MLOPS_HOME whose churn model has two versions trained by the training DAG; champion v1."""
    return trained_churn(tmp_path_factory.mktemp("serving_explain"), seeds=(0, 1))


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
    """``mlops-ops serve churn`` on a free port until the block ends; yields its base URL."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MLOPS_HOME": str(home), "MLOPS_PIPELINES": os.environ["MLOPS_PIPELINES"]}
    command = [sys.executable, "-m", "mlops_ops.cli", "serve", "churn", "--port", str(port), *args]
    with serving(f"mlops-ops serve ({name})", command, f"{url}/ping", tmp / f"{name}.log", env=env):
        yield url


def records(n: int, seed: int = 7, *, keys: bool = False) -> list[dict]:
    frame = generate(n, seed=seed).drop(columns=["churned"])
    rows = json.loads(frame.to_json(orient="records"))
    for i, row in enumerate(rows):
        row["data_usage_gb"] = row["data_usage_gb"] if row["data_usage_gb"] is not None else 12.5
        row["region"] = row["region"] or "north"
        if keys:
            row["customer_id"] = f"c-{seed}-{i}"
    return rows


def post(client: httpx.Client, url: str, body, query: str = "") -> httpx.Response:
    return client.post(f"{url}/invocations{query}", json=body)


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def assert_adds_up(row: dict, explained: dict) -> None:
    """Sum of every feature's contribution + the expected value = the answer's output in the
    explainer's space (log-odds of the positive class for the churn model's boosted trees)."""
    total = explained["expected_value"] + sum(c["contribution"] for c in row["contributions"])
    target = logit(row["probability"]) if explained["output"] == "log_odds" else row["probability"]
    assert total == pytest.approx(target, abs=1e-6), (row, explained)


def test_contributions_only_when_asked_add_up_and_match_the_batch_shape(home, tmp_path):
    rows = records(20)
    features = len(rows[0])  # the churn schema's 7 features
    with service(home, tmp_path, "--no-prediction-log") as url, httpx.Client(timeout=120) as client:
        plain = post(client, url, {"dataframe_records": rows})
        assert plain.status_code == 200, plain.text
        assert set(plain.json()) == {"predictions"}
        assert all(set(r) == FIELDS for r in plain.json()["predictions"])

        full = post(client, url, {"dataframe_records": rows, "params": {"explain": features}})
        assert full.status_code == 200, full.text
        doc = full.json()
        assert set(doc["explanations"]) == {"1"}
        explained = doc["explanations"]["1"]
        assert explained["explainer"] == "tree"
        assert explained["output"] == "log_odds"
        assert explained["k"] == features
        for sent, row, before in zip(rows, doc["predictions"], plain.json()["predictions"], strict=True):
            assert set(row) == FIELDS | {"contributions"}
            assert row["probability"] == before["probability"]  # explaining changes no answer
            assert {c["feature"] for c in row["contributions"]} == set(sent)
            magnitudes = [abs(c["contribution"]) for c in row["contributions"]]
            assert magnitudes == sorted(magnitudes, reverse=True)
            for c in row["contributions"]:  # the input value each contribution is for
                expected = sent[c["feature"]]
                if isinstance(expected, float):
                    expected = pytest.approx(expected)
                assert c["value"] == expected, c
            assert_adds_up(row, explained)

        # the query parameter asks the same, for CSV bodies too; the top 2 are the full list's first 2
        top2 = post(client, url, {"dataframe_records": rows}, "?explain=2").json()
        for row, whole in zip(top2["predictions"], doc["predictions"], strict=True):
            assert row["contributions"] == whole["contributions"][:2]
        csv = pd.DataFrame(rows).to_csv(index=False)
        resp = client.post(f"{url}/invocations?explain=2", content=csv, headers={"Content-Type": "text/csv"})
        assert resp.status_code == 200, resp.text
        assert [r["contributions"][0]["feature"] for r in resp.json()["predictions"]] == [
            r["contributions"][0]["feature"] for r in top2["predictions"]
        ]
        again = post(client, url, {"dataframe_records": rows}, "?explain=2")
        assert again.json()["predictions"][0]["contributions"] == top2["predictions"][0]["contributions"]

        # MLflow's own client carries params beside the data
        from mlflow.pyfunc.scoring_server.client import ScoringServerClient

        host, port = url.removeprefix("http://").split(":")
        answer = ScoringServerClient(host, int(port)).invoke(pd.DataFrame(rows), params={"explain": 3})
        assert answer["explanations"]["1"]["output"] == "log_odds"
        frame = answer.get_predictions()
        assert [len(c) for c in frame["contributions"]] == [3] * len(rows)


def test_bad_explain_values_and_over_budget_requests_get_a_4xx_naming_the_problem(home, tmp_path):
    rows = records(6)
    features = len(rows[0])
    with (
        service(home, tmp_path, "--no-prediction-log", "--explain-max-rows", "5", name="budget") as url,
        httpx.Client(timeout=120) as client,
    ):

        def bad(resp: httpx.Response, status: int, *words: str) -> None:
            assert resp.status_code == status, resp.text
            message = resp.json()["message"]
            for word in words:
                assert word in message, (word, message)

        one = {"dataframe_records": rows[:1]}
        for value in (0, -1, 1.5, "three", True, [2], {"k": 2}):
            bad(
                post(client, url, {**one, "params": {"explain": value}}),
                400,
                "params.explain",
                "whole number",
            )
        for value in ("0", "x", "2.5", ""):
            bad(post(client, url, one, f"?explain={value}"), 400, "query parameter 'explain'")
        bad(
            post(client, url, {**one, "params": {"explain": features + 1}}),
            422,
            f"explain={features + 1}",
            f"{features} features",
            "churn v1",
        )
        bad(post(client, url, {**one, "params": {"explain": 2, "temperature": 0.1}}), 400, "temperature")
        bad(post(client, url, {**one, "params": [2]}), 400, "'params' must be an object")
        bad(post(client, url, {**one, "params": {"explain": 2}}, "?explain=3"), 400, "explain=3", "explain=2")
        bad(
            post(client, url, {"dataframe_records": rows, "params": {"explain": 2}}),
            413,
            "6 rows",
            "at most 5",
        )
        bad(post(client, url, {"dataframe_records": rows}, "?explain=1"), 413, "--explain-max-rows")
        # the budget binds explanations only, and a refusal leaves the service answering
        assert post(client, url, {"dataframe_records": rows}).status_code == 200
        assert post(client, url, {"dataframe_records": rows[:5], "params": {"explain": 1}}).status_code == 200
        assert post(client, url, {**one, "params": {}}).status_code == 200
        assert post(client, url, {**one, "params": {"explain": None}}).status_code == 200


def test_each_row_is_explained_by_the_version_that_scored_it(home, tmp_path):
    mlflow_client().set_registered_model_alias("churn", "challenger", "2")
    rows = records(40, keys=True)
    features = len(rows[0]) - 1
    ask = {"dataframe_records": rows, "params": {"explain": features}}
    canary = (
        "--strategy",
        "canary",
        "--traffic",
        "0.5",
        "--sticky-key",
        "customer_id",
        "--no-prediction-log",
    )
    with service(home, tmp_path, *canary, name="canary") as url, httpx.Client(timeout=120) as client:
        doc = post(client, url, ask).json()
    assert set(doc["explanations"]) == {"1", "2"}
    assert doc["explanations"]["1"]["expected_value"] != doc["explanations"]["2"]["expected_value"]
    assert {r["arm"] for r in doc["predictions"]} == {"champion", "challenger"}
    for row in doc["predictions"]:
        assert_adds_up(row, doc["explanations"][row["model_version"]])
    shadow = ("--strategy", "shadow", "--sticky-key", "customer_id", "--no-prediction-log")
    with service(home, tmp_path, *shadow, name="shadow") as url, httpx.Client(timeout=120) as client:
        doc = post(client, url, ask).json()
    assert set(doc["explanations"]) == {"1"}  # the shadow's scores are never answered, nor explained
    assert {r["model_version"] for r in doc["predictions"]} == {"1"}
    for row in doc["predictions"]:
        assert_adds_up(row, doc["explanations"]["1"])


def test_an_alias_move_explains_with_the_new_versions_explainer(home, tmp_path):
    rows = records(5)
    ask = {"dataframe_records": rows, "params": {"explain": len(rows[0])}}
    follow = ("--poll-seconds", "0.5", "--no-prediction-log")
    with service(home, tmp_path, *follow, name="follow") as url, httpx.Client(timeout=120) as client:
        before = post(client, url, ask).json()
        assert set(before["explanations"]) == {"1"}
        mlflow_client().set_registered_model_alias("churn", "champion", "2")
        deadline = time.monotonic() + 120
        while client.get(f"{url}/health").json()["champion"] != "2" and time.monotonic() < deadline:
            time.sleep(0.2)
        after = post(client, url, ask).json()
    assert set(after["explanations"]) == {"2"}  # v1's cached explainer left with v1
    assert after["explanations"]["2"]["expected_value"] != before["explanations"]["1"]["expected_value"]
    for row in after["predictions"]:
        assert row["model_version"] == "2"
        assert_adds_up(row, after["explanations"]["2"])


# -- in process: a linear version, a version shap cannot explain, the explainer's cache -----------


class Wrapped:
    """A fitted pipeline behind an object that is not a scikit-learn Pipeline: it scores, but shap
    (and core.explain) cannot map its inputs, as for a custom pyfunc."""

    def __init__(self, pipeline):
        self.pipeline = pipeline
        self.classes_ = pipeline.classes_

    def predict(self, x):
        return self.pipeline.predict(x)

    def predict_proba(self, x):
        return self.pipeline.predict_proba(x)


@pytest.fixture(scope="module")
def local_models():
    from sklearn.linear_model import LogisticRegression

    from mlops_ops.core.schema_inference import infer_schema
    from mlops_ops.core.training import build_pipeline
    from mlops_ops.serving.models import ServedModel, known_categories

    frame = generate(600, seed=0)
    frame["data_usage_gb"] = frame["data_usage_gb"].fillna(10.0)
    schema = infer_schema(
        frame,
        "churned",
        numeric=["tenure_months", "monthly_charges", "support_calls", "data_usage_gb"],
        categorical=["contract", "region"],
    )
    pipeline = build_pipeline(LogisticRegression(max_iter=500), schema.feature_set, schema)
    pipeline.fit(frame, frame["churned"])
    background = frame[schema.features].iloc[:100]
    loads: list[int] = []

    def stored():
        loads.append(1)
        return background

    def served(version, model, **kw):
        return ServedModel(
            name="churn",
            version=version,
            model=model,
            schema=schema,
            task="classification",
            categories=known_categories(pipeline),
            **kw,
        )

    return served("1", pipeline, background=stored), served("9", Wrapped(pipeline)), loads


def local_request(n: int, explain: int | None):
    from mlops_ops.serving.protocol import parse_body

    frame = generate(n, seed=5)[["tenure_months", "monthly_charges", "support_calls", "contract"]]
    rows = json.loads(frame.to_json(orient="records"))
    for row in rows:
        row.update(data_usage_gb=5.0, region="north")
    query = None if explain is None else str(explain)
    return parse_body(json.dumps({"dataframe_records": rows}).encode(), max_rows=1000, explain=query)


def local_service():
    from mlops_ops.serving.metrics import ServingMetrics
    from mlops_ops.serving.routing import Routing, Strategy
    from mlops_ops.serving.service import ScoringService

    return ScoringService(Routing(Strategy.DIRECT, 0.0, salt="churn"), ServingMetrics("churn"), None)


def test_a_linear_version_is_explained_lazily_once_and_adds_up_in_log_odds(local_models):
    linear, _, loads = local_models
    scorer = local_service()
    from mlops_ops.serving.models import Models

    status, doc = scorer.score(local_request(12, None), Models(champion=linear))
    assert status == 200
    assert "explanations" not in doc
    assert linear._explainer == {}
    assert loads == []
    for _ in range(2):
        status, doc = scorer.score(local_request(12, 6), Models(champion=linear))
        assert status == 200
    assert loads == [1]  # built and its background read once
    explained = doc["explanations"]["1"]
    assert explained["explainer"] == "linear"
    assert explained["output"] == "log_odds"
    for row in doc["predictions"]:
        total = explained["expected_value"] + sum(c["contribution"] for c in row["contributions"])
        assert total == pytest.approx(logit(row["probability"]), abs=1e-6)
        assert np.isfinite([c["contribution"] for c in row["contributions"]]).all()


def test_a_version_shap_cannot_explain_gets_a_422_naming_it_and_still_scores(local_models):
    from mlops_ops.serving.models import Models
    from mlops_ops.serving.protocol import RequestError

    _, opaque, _ = local_models
    scorer = local_service()
    for _ in range(2):  # the refusal is cached, and stays a refusal
        with pytest.raises(RequestError) as err:
            scorer.score(local_request(3, 2), Models(champion=opaque))
        assert err.value.status == 422
        assert "churn v9 cannot be explained" in err.value.message
        assert "without 'explain'" in err.value.message
    status, doc = scorer.score(local_request(3, None), Models(champion=opaque))
    assert status == 200
    assert len(doc["predictions"]) == 3


def test_a_version_only_the_permutation_fallback_explains_has_its_own_smaller_budget(local_models):
    from sklearn.neighbors import KNeighborsClassifier

    from mlops_ops.core.training import build_pipeline
    from mlops_ops.serving.models import Models, ServedModel
    from mlops_ops.serving.protocol import RequestError

    linear, _, _ = local_models
    frame = generate(300, seed=0)
    frame["data_usage_gb"] = frame["data_usage_gb"].fillna(10.0)
    pipeline = build_pipeline(KNeighborsClassifier(15), linear.schema.feature_set, linear.schema)
    pipeline.fit(frame, frame["churned"])
    background = frame[linear.schema.features].iloc[:25]
    knn = ServedModel(
        name="churn",
        version="4",
        model=pipeline,
        schema=linear.schema,
        task="classification",
        categories=linear.categories,
        background=lambda: background,
    )
    scorer = local_service()  # budgets: 100 rows, 10 for the fallback
    with pytest.raises(RequestError) as err:
        scorer.score(local_request(11, 2), Models(champion=knn))
    assert err.value.status == 413
    assert "churn v4" in err.value.message
    assert "--explain-fallback-max-rows" in err.value.message
    status, doc = scorer.score(local_request(4, 6), Models(champion=knn))
    assert status == 200
    explained = doc["explanations"]["4"]
    assert explained["explainer"] == "permutation"
    assert explained["output"] == "probability"
    for row in doc["predictions"]:  # each permutation is exactly additive
        total = explained["expected_value"] + sum(c["contribution"] for c in row["contributions"])
        assert total == pytest.approx(row["probability"], abs=1e-6)
