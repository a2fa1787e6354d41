"""The one JSON sanitiser and its rule (non-finite numbers and missing values -> null), and the
documents that go through it: drift, gate, performance, validation details, stored JSON files."""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_ops.core.jsonsafe import json_dumps, json_safe

NON_FINITE = [
    math.nan,
    math.inf,
    -math.inf,
    np.float64("nan"),
    np.float32("inf"),
    np.float16("-inf"),
    np.longdouble("nan"),
    pd.NA,
    pd.NaT,
]


def strict(text: str) -> object:
    """Parse JSON refusing NaN/Infinity tokens."""

    def refuse(token: str) -> object:
        raise AssertionError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("value", NON_FINITE, ids=repr)
def test_every_non_finite_or_missing_number_becomes_null_at_any_depth(value):
    doc = {"a": value, "b": [1.5, value], "c": {"d": (value,)}, "e": {value}}
    assert json_safe(value) is None
    assert json_safe(doc) == {"a": None, "b": [1.5, None], "c": {"d": [None]}, "e": [None]}
    assert strict(json_dumps(doc)) == json_safe(doc)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (np.float32(0.5), 0.5),
        (np.float64(-2.25), -2.25),
        (np.int8(-3), -3),
        (np.uint64(2**63), 2**63),
        (np.bool_(True), True),
        (np.array([1, 2, 3]), [1, 2, 3]),
        (np.array([[0.5, np.nan]]), [[0.5, None]]),
        (pd.Series([1.0, np.inf]), [1.0, None]),
        (1e308, 1e308),
        (-0.0, -0.0),
        (True, True),
        (7, 7),
        ("NaN", "NaN"),  # a string is data, not a number
        (None, None),
    ],
    ids=repr,
)
def test_numpy_and_python_values_become_plain_json_values(value, expected):
    out = json_safe(value)
    assert out == expected
    assert type(out) is type(expected)
    assert strict(json_dumps(value)) == expected


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 2


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (dt.date(2026, 3, 3), "2026-03-03"),
        (dt.datetime(2026, 3, 3, 1, 2, tzinfo=dt.UTC), "2026-03-03 01:02:00+00:00"),
        (pd.Timestamp("2026-03-03", tz="UTC"), "2026-03-03 00:00:00+00:00"),
        (Path("/tmp/x"), "/tmp/x"),
        (Colour.RED, "Colour.RED"),
        (Level.HIGH, 2),
        (b"raw", "b'raw'"),
    ],
    ids=repr,
)
def test_other_values_become_their_str_as_default_str_wrote_them(value, expected):
    assert json_safe(value) == expected
    assert json.loads(json_dumps({"v": value})) == {"v": expected}


def test_keys_become_strings_items_can_be_capped_and_the_input_is_left_alone():
    doc = {1: [math.nan] * 3, ("t",): {"x": math.inf}, None: np.arange(100)}
    before = repr(doc)
    out = json_safe(doc, max_items=2)
    assert out == {"1": [None, None], "('t',)": {"x": None}, "None": [0, 1]}
    assert repr(doc) == before
    assert json_safe(list(range(60)), max_items=50) == list(range(50))


def test_every_document_that_carries_a_non_finite_number_is_strict_json():
    from mlops_ops.core.monitoring import PerformanceCheck
    from mlops_ops.hooks.storage import json_bytes

    check = PerformanceCheck("ok", "rmse", math.inf, math.nan, 0.1, None, 10, 5, ["r"])
    doc = check.to_dict()
    assert (doc["value"], doc["baseline"], doc["drop"]) == (None, None, None)
    stored = strict(json_bytes({"check": doc, "x": np.float32("nan"), "when": dt.date(2026, 1, 2)}))
    assert stored == {"check": json.loads(json.dumps(doc)), "x": None, "when": "2026-01-02"}
    assert json_bytes({"b": 1, "a": [1.0]}).decode() == '{\n  "a": [\n    1.0\n  ],\n  "b": 1\n}\n'


def test_the_gate_and_drift_documents_use_the_same_rule():
    from mlops_ops.core.drift import ColumnDrift, MissingDrift
    from mlops_ops.core.evaluation import GateDecision

    decision = GateDecision(
        promote=False,
        baseline_version=None,
        challenger_version="2",
        challenger_metrics={"roc_auc": np.float64("nan"), "accuracy": np.float32(0.75)},
        champion_metrics={"roc_auc": math.inf},
        reasons=["x"],
        primary_metric="roc_auc",
    )
    doc = decision.to_dict()
    assert doc["challenger_metrics"] == {"roc_auc": None, "accuracy": 0.75}
    assert doc["champion_metrics"] == {"roc_auc": None}
    strict(json.dumps(doc))

    missing = MissingDrift(0.1, 0.2, math.nan, 0.5, 0.5, 0.1, 0.1, np.bool_(False), True)
    column = ColumnDrift(
        "x",
        "numeric",
        "ks",
        np.float64("inf"),
        0.5,
        0.5,
        math.nan,
        0.1,
        False,
        False,
        True,
        -math.inf,
        None,
        np.float32("nan"),
        missing,
        10,
        {"edges": np.array([0.0, math.nan])},
    )
    doc = column.to_dict()
    assert (doc["statistic"], doc["effect"], doc["psi"], doc["wasserstein"]) == (None, None, None, None)
    assert doc["missing"]["statistic"] is None
    assert doc["missing"]["drifted"] is False
    assert doc["histogram"] == {"edges": [0.0, None]}
    strict(json.dumps(doc))


def test_validation_details_follow_the_rule_and_keep_at_most_50_sample_values():
    from mlops_ops.core.validation import _result

    frame = pd.DataFrame({"x": [1.0]})
    result = {
        "observed_value": np.float64("nan"),
        "partial_unexpected_list": [np.int64(i) for i in range(80)],
        "unexpected_percent": np.float32(12.5),
    }
    check = _result(
        frame, "expect_x", {"column": "x", "min_value": -math.inf}, "x", "error", "spec", False, result, {}
    )
    assert check.details["observed_value"] is None
    assert check.details["partial_unexpected_list"] == list(range(50))
    assert check.details["unexpected_percent"] == 12.5
    assert check.details["kwargs"] == {"column": "x", "min_value": None}
    strict(json.dumps(check.details))
