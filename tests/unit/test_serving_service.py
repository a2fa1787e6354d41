"""One scoring request through ScoringService, without HTTP: real scikit-learn models built by the
project's training pipeline, a real prediction log on disk. What the HTTP tests cannot provoke
cheaply: a challenger that fails on valid rows, under canary and under shadow."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from mlops_ops.core.schema_inference import infer_schema
from mlops_ops.core.training import build_pipeline
from mlops_ops.example.churn import generate
from mlops_ops.hooks.storage import PipelineStorage
from mlops_ops.serving.metrics import ServingMetrics
from mlops_ops.serving.models import Models, ServedModel, known_categories
from mlops_ops.serving.prediction_log import PredictionLogWriter, read_prediction_log
from mlops_ops.serving.protocol import RequestError, parse_body
from mlops_ops.serving.routing import Routing, Strategy
from mlops_ops.serving.service import ScoringService


class BrokenModel(LogisticRegression):
    """A fitted classifier whose predictions fail: a challenger that errors on valid rows."""

    def predict_proba(self, x):
        raise RuntimeError("the challenger's feature store is down")

    def predict(self, x):
        raise RuntimeError("the challenger's feature store is down")


@pytest.fixture(scope="module")
def models():
    frame = generate(600, seed=0)
    frame["data_usage_gb"] = frame["data_usage_gb"].fillna(10.0)  # never missing at training
    schema = infer_schema(
        frame,
        "churned",
        numeric=["tenure_months", "monthly_charges", "support_calls", "data_usage_gb"],
        categorical=["contract", "region"],
    )

    def served(version, estimator):
        pipeline = build_pipeline(estimator, schema.feature_set, schema).fit(frame, frame["churned"])
        return ServedModel(
            name="churn",
            version=version,
            model=pipeline,
            schema=schema,
            task="classification",
            categories=known_categories(pipeline),
            never_missing=frozenset({"tenure_months", "data_usage_gb"}),
        )

    return served("1", LogisticRegression(max_iter=500)), served("2", BrokenModel(max_iter=500))


def body(n: int, seed: int = 5) -> bytes:
    frame = generate(n, seed=seed)[["tenure_months", "monthly_charges", "support_calls", "contract"]]
    rows = json.loads(frame.to_json(orient="records"))
    for i, row in enumerate(rows):
        row.update(data_usage_gb=5.0, region="north", customer_id=f"c{i}")
    return json.dumps({"dataframe_records": rows}).encode()


def service(tmp_path, strategy: Strategy, traffic: float = 0.0):
    writer = PredictionLogWriter(PipelineStorage("churn", root=f"file://{tmp_path}"), max_rows=10_000)
    routing = Routing(strategy, traffic, sticky_key="customer_id", salt="churn")
    return ScoringService(routing, ServingMetrics("churn"), writer), writer


def logged(tmp_path):
    now = dt.datetime.now(dt.UTC)
    storage = PipelineStorage("churn", root=f"file://{tmp_path}")
    return read_prediction_log(storage, now - dt.timedelta(hours=1), now + dt.timedelta(hours=1))


def test_a_failing_challenger_under_canary_answers_500_and_is_logged_with_its_error(models, tmp_path):
    champion, challenger = models
    svc, writer = service(tmp_path, Strategy.CANARY, traffic=1.0)
    with pytest.raises(RequestError) as err:
        svc.score(parse_body(body(3), max_rows=100), Models(champion, challenger))
    assert err.value.status == 500
    assert "churn v2 (challenger) failed to score" in err.value.message
    writer.close()
    log = logged(tmp_path)
    assert set(log["arm"]) == {"challenger"}
    assert (log["status"] == 500).all()
    assert log["error"].str.contains("feature store is down").all()
    assert not log["served"].any()
    assert log["prediction"].isna().all()


def test_a_failing_shadow_never_reaches_the_answer(models, tmp_path):
    champion, challenger = models
    request = parse_body(body(4), max_rows=100)
    alone, _ = service(tmp_path / "alone", Strategy.DIRECT)
    status, expected = alone.score(request, Models(champion, None))
    svc, writer = service(tmp_path, Strategy.SHADOW)
    status, answer = svc.score(request, Models(champion, challenger))
    assert status == 200
    strip = [{k: v for k, v in r.items() if k != "prediction_id"} for r in answer["predictions"]]
    assert strip == [{k: v for k, v in r.items() if k != "prediction_id"} for r in expected["predictions"]]
    writer.close()
    log = logged(tmp_path)
    shadow = log[log["arm"] == "shadow"]
    assert len(shadow) == 4
    assert (shadow["status"] == 500).all()
    assert not shadow["served"].any()
    served = log[log["arm"] == "champion"]
    assert served["served"].all()
    assert sorted(served["prediction_id"]) == sorted(r["prediction_id"] for r in answer["predictions"])
    assert np.allclose(
        served.set_index("prediction_id").loc[
            [r["prediction_id"] for r in answer["predictions"]], "probability"
        ],
        [r["probability"] for r in answer["predictions"]],
    )


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"contract": "lifetime"}, ["'contract'", "unknown category", "month_to_month"]),
        ({"tenure_months": None}, ["'tenure_months'", "missing", "never saw it missing"]),
        ({"monthly_charges": "a lot"}, ["'monthly_charges'", "numeric"]),
        ({"tenure_monts": 3}, ["tenure_monts", "not in the schema"]),
    ],
)
def test_a_row_that_does_not_fit_the_answering_version_is_a_422_naming_the_column(
    models, tmp_path, change, words
):
    champion, _ = models
    rows = json.loads(body(2))["dataframe_records"]
    for row in rows:
        row.update(change)
    svc, _ = service(tmp_path, Strategy.DIRECT)
    with pytest.raises(RequestError) as err:
        svc.score(
            parse_body(json.dumps({"dataframe_records": rows}).encode(), max_rows=100), Models(champion)
        )
    assert err.value.status == 422
    for word in words:
        assert word in err.value.message


def test_no_champion_is_a_503(tmp_path):
    svc, _ = service(tmp_path, Strategy.DIRECT)
    with pytest.raises(RequestError) as err:
        svc.score(parse_body(body(1), max_rows=100), Models())
    assert err.value.status == 503


def test_a_sticky_key_sent_as_a_number_a_float_or_text_keeps_its_arm(models, tmp_path):
    champion, _ = models
    second = ServedModel(**{**champion.__dict__, "version": "3"})
    svc, _ = service(tmp_path, Strategy.CANARY, traffic=0.5)
    rows = json.loads(body(1))["dataframe_records"]
    arms = {}
    for key in range(40):
        spelled = [key, float(key), str(key)]
        request = {"dataframe_records": [{**rows[0], "customer_id": k} for k in spelled]}
        _, answer = svc.score(parse_body(json.dumps(request).encode(), max_rows=10), Models(champion, second))
        found = {r["arm"] for r in answer["predictions"]}
        assert len(found) == 1, (key, found)
        arms[key] = found.pop()
    assert set(arms.values()) == {"champion", "challenger"}
