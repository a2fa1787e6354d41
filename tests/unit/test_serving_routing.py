"""Routing (stable hash against the traffic share) and the scoring protocol's parsing: pure logic."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from mlops_ops.serving.cli import routing_from_spec
from mlops_ops.serving.protocol import RequestError, parse_body
from mlops_ops.serving.routing import Arm, Routing, Strategy, bucket


def test_the_bucket_is_the_same_in_another_process_whatever_its_hash_seed():
    keys = [f"customer-{i}" for i in range(20)]
    here = [bucket(k, "churn") for k in keys]
    code = (
        "import json, sys; from mlops_ops.serving.routing import bucket; "
        f"print(json.dumps([bucket(k, 'churn') for k in {keys!r}]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123"},
    )
    assert eval(out.stdout) == here  # noqa: S307 - our own JSON list of floats


def test_the_challenger_share_of_keys_is_the_traffic_within_three_standard_errors():
    routing = Routing(Strategy.CANARY, traffic=0.1, salt="churn")
    n = 20_000
    share = sum(routing.arm(f"k{i}", has_challenger=True) is Arm.CHALLENGER for i in range(n)) / n
    assert abs(share - 0.1) <= 3 * math.sqrt(0.1 * 0.9 / n)


def test_a_key_keeps_its_arm_and_a_larger_share_only_adds_keys():
    small, large = Routing(Strategy.CANARY, 0.1), Routing(Strategy.CANARY, 0.3)
    keys = [f"k{i}" for i in range(2000)]
    in_small = {k for k in keys if small.arm(k, has_challenger=True) is Arm.CHALLENGER}
    in_large = {k for k in keys if large.arm(k, has_challenger=True) is Arm.CHALLENGER}
    assert in_small <= in_large


@pytest.mark.parametrize("strategy", list(Strategy))
def test_without_a_challenger_every_row_is_the_champions(strategy):
    routing = Routing(strategy, traffic=1.0 if strategy in (Strategy.CANARY, Strategy.AB) else 0.0)
    assert {routing.arm(f"k{i}", has_challenger=False) for i in range(50)} == {Arm.CHAMPION}
    assert not routing.shadows(has_challenger=False)


def test_shadow_and_direct_never_route_to_the_challenger():
    for strategy in (Strategy.SHADOW, Strategy.DIRECT):
        routing = Routing(strategy, traffic=1.0)
        assert {routing.arm(f"k{i}", has_challenger=True) for i in range(50)} == {Arm.CHAMPION}
    assert Routing(Strategy.SHADOW).shadows(has_challenger=True)


def test_routing_from_a_spec_without_a_deployment_section_is_direct_and_options_override():
    class Spec:
        name = "churn"

    assert routing_from_spec(Spec()) == Routing(Strategy.DIRECT, 0.0, None, "churn")
    assert routing_from_spec(Spec(), strategy="ab").traffic == 0.5
    assert routing_from_spec(Spec(), strategy="canary").traffic == 0.1
    with pytest.raises(ValueError, match="traffic"):
        routing_from_spec(Spec(), strategy="canary", traffic=1.5)


def test_parse_body_reads_each_shape_into_the_same_frame():
    rows = [{"a": 1, "b": "x"}, {"a": 2, "b": None}]
    shapes = [
        {"dataframe_split": {"columns": ["a", "b"], "data": [[1, "x"], [2, None]]}},
        {"dataframe_records": rows},
        {"instances": rows},
        {"inputs": {"a": [1, 2], "b": ["x", None]}},
    ]
    import json

    for shape in shapes:
        parsed = parse_body(json.dumps(shape).encode(), max_rows=10)
        assert list(parsed.frame.columns) == ["a", "b"]
        assert parsed.records == rows


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        (b"  ", 400, "empty"),
        (b'{"a": "\xff"}', 400, "UTF-8"),
        (b'{"inputs": {"a": [1], "b": [1, 2]}}', 400, "different lengths"),
        (b'{"dataframe_split": {"columns": ["a"], "data": [[1]], "extra": 1}}', 400, "unknown key"),
        (b'{"dataframe_split": {"columns": [1], "data": []}}', 400, "column names"),
        (b'{"dataframe_records": [{"a": {"b": 1}}]}', 422, "'a' in row 0 holds a dict"),
        (b'{"dataframe_records": [{"a": 1}, {"b": 1}]}', 422, "row 1"),
        (b'{"dataframe_records": [{"a": 1}], "instances": []}', 400, "exactly one"),
        (b'{"dataframe_records": [{"a": 1}, {"a": 2}, {"a": 3}]}', 413, "at most 2"),
    ],
)
def test_parse_body_refuses_bad_shapes_with_a_4xx_that_says_why(body, status, text):
    with pytest.raises(RequestError) as err:
        parse_body(body, max_rows=2)
    assert err.value.status == status
    assert text in err.value.message
