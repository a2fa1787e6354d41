"""The ``deployment`` section: defaults keep every spec on ``direct``; bad values name the field."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from mlops_ops.config import DeploymentSpec, SpecError, parse_pipeline_spec
from tests.conftest import ROOT

EXAMPLE = ROOT / "pipelines" / "churn.yaml"


@pytest.fixture(scope="module")
def example() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE.read_text())


def with_deployment(example: dict[str, Any], deployment: Any) -> dict[str, Any]:
    return {**example, "deployment": deployment}


def test_a_spec_without_the_section_deploys_directly(example):
    spec = parse_pipeline_spec(example)
    assert spec.deployment == DeploymentSpec()
    assert spec.deployment.strategy == "direct"
    assert not spec.deployment.is_release
    assert spec.deployment.challenger_share == 0.0
    assert spec.schedules.release == "*/15 * * * *"


@pytest.mark.parametrize(("strategy", "share"), [("canary", 0.1), ("ab", 0.5), ("shadow", 0.0)])
def test_traffic_defaults_by_strategy(example, strategy, share):
    deployment = parse_pipeline_spec(with_deployment(example, {"strategy": strategy})).deployment
    assert deployment.is_release
    assert deployment.challenger_share == share


def test_the_contract_example_reads_back(example):
    doc = {
        "strategy": "canary",
        "traffic": 0.2,
        "sticky_key": "customer_id",
        "bake": {"minutes": 30, "min_requests": 200},
        "guardrails": {
            "max_error_rate": 0.02,
            "max_p95_latency_ratio": 2.0,
            "max_prediction_drift": 0.15,
            "metric_tolerance": 0.02,
        },
        "watch": {"minutes": 0},
        "approval": True,
    }
    deployment = parse_pipeline_spec(with_deployment(example, doc)).deployment
    assert deployment.model_dump() == doc
    assert deployment.challenger_share == 0.2


@pytest.mark.parametrize(
    ("deployment", "expected"),
    [
        (
            {"strategy": "blue_green"},
            "deployment.strategy: Input should be 'direct', 'canary', 'shadow' or 'ab'",
        ),
        ({"strategy": "canary", "traffic": 1.5}, "deployment.traffic: Input should be less than 1"),
        ({"strategy": "canary", "traffic": 0}, "deployment.traffic: Input should be greater than 0"),
        ({"strategy": "canary", "traffic": "0.1"}, "deployment.traffic: expected a number"),
        (
            {"strategy": "ab", "bake": {"min_requests": 5}},
            "deployment.bake.min_requests: Input should be greater",
        ),
        ({"strategy": "ab", "bake": {"minutes": 1.5}}, "deployment.bake.minutes: expected a whole"),
        (
            {"strategy": "ab", "guardrails": {"max_p95_latency_ratio": 0.5}},
            "deployment.guardrails.max_p95_latency_ratio: Input should be greater than or equal to 1",
        ),
        (
            {"strategy": "ab", "guardrails": {"max_error_rate": 1}},
            "deployment.guardrails.max_error_rate: Input should be less than 1",
        ),
        ({"strategy": "ab", "watch": {"minutes": -1}}, "deployment.watch.minutes: Input should be greater"),
        ({"strategy": "direct", "approval": True}, "deployment.approval: approval applies to a release"),
        ({"strategy": "canary", "sticky_key": " id"}, "deployment.sticky_key: expected a column"),
        ({"strategy": "canary", "gaurdrails": {}}, "deployment.gaurdrails: Extra inputs are not permitted"),
        ({"strategy": "canary", "guardrails": {"max_error": 0.1}}, "deployment.guardrails.max_error: Extra"),
    ],
)
def test_bad_values_name_the_field(example, deployment, expected):
    with pytest.raises(SpecError) as err:
        parse_pipeline_spec(with_deployment(example, deployment), origin="churn.yaml")
    assert "churn.yaml" in str(err.value)
    assert expected in str(err.value)


def test_a_bad_release_schedule_names_the_field(example):
    doc = {**example, "schedules": {**example.get("schedules", {}), "release": "every 15"}}
    with pytest.raises(SpecError, match=r"schedules.release: 'every 15' is not a valid cron"):
        parse_pipeline_spec(doc)
