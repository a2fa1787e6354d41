"""Pipeline specs: the example loads; every kind of bad spec fails with a message naming the fix."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_ops.config import (
    PipelineSpec,
    SpecError,
    load_pipeline_spec,
    parse_pipeline_spec,
    pipeline_json_schema,
)
from tests.conftest import ROOT

EXAMPLE = ROOT / "pipelines" / "churn.yaml"


@pytest.fixture(scope="module")
def example() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE.read_text())


def write_spec(directory: Path, data: Any, name: str = "churn") -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def load_error(directory: Path, data: Any, name: str = "churn") -> tuple[Path, str]:
    path = write_spec(directory, data, name)
    with pytest.raises(SpecError) as err:
        load_pipeline_spec(path)
    return path, str(err.value)


def test_the_example_spec_loads():
    spec = load_pipeline_spec(EXAMPLE)
    assert isinstance(spec, PipelineSpec)
    assert spec.name == "churn"
    assert spec.target == "churned"
    assert spec.source.uri
    assert spec.source.sql is None
    assert spec.model.estimator == "sklearn.ensemble.HistGradientBoostingClassifier"
    assert spec.evaluation.primary_metric == "roc_auc"
    assert spec.evaluation.thresholds["roc_auc"].lower == 0.70
    assert spec.features.numeric
    assert spec.features.categorical
    assert not spec.features.inferred
    assert len(spec.validation.expectations) == 2


def test_the_spec_is_frozen(example):
    spec = parse_pipeline_spec(example)
    with pytest.raises(Exception, match="frozen"):
        spec.target = "other"  # type: ignore[misc]


def _pop(path: str):
    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = data
        for p in parents:
            node = node[p]
        del node[last]

    return mutate


def _set(path: str, value: Any):
    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = data
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value

    return mutate


def _both(*mutations):
    def mutate(data: dict[str, Any]) -> None:
        for m in mutations:
            m(data)

    return mutate


# (id, mutation of the example, field path the message must name, what the message must say)
BAD_SPECS = [
    ("missing-target", _pop("target"), "target", "Field required"),
    ("typo-top-level", _set("targett", "churned"), "targett", "Extra inputs are not permitted"),
    ("typo-nested", _set("model.paramz", {"max_iter": 3}), "model.paramz", "Extra inputs are not permitted"),
    (
        "uri-and-sql",
        _both(_set("source.sql", "select 1"), _set("source.conn_id", "db")),
        "source",
        "exactly one of 'uri' (files) or 'sql'",
    ),
    ("sql-without-conn-id", _set("source", {"sql": "select 1"}), "source", "'sql' needs 'conn_id'"),
    (
        "parameters-without-sql",
        _set("source.parameters", {"day": "{{ ds }}"}),
        "source",
        "'parameters' only apply to a 'sql' source",
    ),
    (
        "lower-above-upper",
        _set("evaluation.thresholds.roc_auc", {"lower": 0.9, "upper": 0.8}),
        "evaluation.thresholds.roc_auc",
        "lower (0.9) is above upper (0.8)",
    ),
    (
        "threshold-without-bounds",
        _set("evaluation.thresholds.roc_auc", {}),
        "evaluation.thresholds.roc_auc",
        "give 'lower', 'upper' or both",
    ),
    (
        "unknown-metric",
        _set("evaluation.thresholds.aucc", {"lower": 0.5}),
        "evaluation",
        "unknown metric(s) ['aucc']; known: ['accuracy'",
    ),
    (
        "unknown-primary-metric",
        _set("evaluation.primary_metric", "auroc"),
        "evaluation",
        "unknown metric(s) ['auroc']",
    ),
    (
        "numeric-and-categorical",
        _set("features.categorical", ["contract", "tenure_months"]),
        "features",
        "columns listed as both numeric and categorical: ['tenure_months']",
    ),
    (
        "estimator-not-an-import-path",
        _set("model.estimator", "HistGradientBoostingClassifier"),
        "model.estimator",
        "expected an import path like 'sklearn.linear_model.LogisticRegression', got "
        "'HistGradientBoostingClassifier'",
    ),
    (
        "holdout-fraction-out-of-range",
        _set("model.holdout_fraction", 0.95),
        "model.holdout_fraction",
        "less than 0.9",
    ),
    (
        "expectation-not-a-gx-name",
        _set("validation.expectations", [{"type": "column_exists"}]),
        "validation.expectations.0.type",
        "expected a GX expectation name",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "field", "expected"),
    [case[1:] for case in BAD_SPECS],
    ids=[case[0] for case in BAD_SPECS],
)
def test_a_bad_spec_names_the_file_the_field_and_what_was_expected(
    tmp_path, example, mutate, field, expected
):
    data = copy.deepcopy(example)
    mutate(data)
    path, message = load_error(tmp_path, data)
    assert message.startswith(f"{path}: invalid pipeline spec")
    assert f"  - {field}: " in message, message
    assert expected in message, message


@pytest.mark.parametrize("bad_name", ["Churn", "1churn", "churn-model", "c" * 64])
def test_a_bad_name_is_rejected(tmp_path, example, bad_name):
    data = {**copy.deepcopy(example), "name": bad_name}
    path, message = load_error(tmp_path, data, name=bad_name)
    assert str(path) in message
    assert "  - name: expected lowercase letters, digits and underscores, starting with a letter" in message
    assert repr(bad_name) in message


def test_the_name_must_match_the_file_name(tmp_path, example):
    path, message = load_error(tmp_path, copy.deepcopy(example), name="churn_v2")
    assert message == f"{path}: name 'churn' must match the file name 'churn_v2'"


def test_a_regression_metric_is_rejected_for_a_classifier(tmp_path, example):
    data = copy.deepcopy(example)
    data["model"]["task"] = "classification"
    data["evaluation"]["thresholds"]["rmse"] = {"upper": 0.3}
    path, message = load_error(tmp_path, data)
    assert str(path) in message
    assert "metric(s) ['rmse'] do not apply to a classification model" in message
    assert "use ['roc_auc'" in message


def test_a_classification_metric_is_rejected_for_a_regressor(tmp_path, example):
    data = copy.deepcopy(example)
    data["model"] = {"estimator": "sklearn.linear_model.Ridge", "task": "regression"}
    data["evaluation"] = {"primary_metric": "rmse", "thresholds": {"roc_auc": {"lower": 0.5}}}
    _, message = load_error(tmp_path, data)
    assert "metric(s) ['roc_auc'] do not apply to a regression model; use ['r2', 'rmse', 'mae']" in message


def test_with_task_auto_the_metric_kind_is_not_checked(example):
    data = copy.deepcopy(example)
    data["evaluation"]["thresholds"]["rmse"] = {"upper": 0.3}
    assert parse_pipeline_spec(data).model.task == "auto"


def test_the_target_listed_as_a_feature_is_rejected(tmp_path, example):
    data = copy.deepcopy(example)
    data["features"]["numeric"].append("churned")
    path, message = load_error(tmp_path, data)
    assert str(path) in message
    assert "the target column 'churned' is also listed as a feature" in message


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (
            _both(_set("model.task", "classification"), _set("evaluation.thresholds.rmse", {"upper": 1})),
            "evaluation",
        ),
        (_set("features.numeric", ["churned", "tenure_months"]), "features"),
    ],
    ids=["regression-metric-for-classifier", "target-as-feature"],
)
def test_cross_field_errors_name_the_field(tmp_path, example, mutate, field):
    data = copy.deepcopy(example)
    mutate(data)
    _, message = load_error(tmp_path, data)
    assert "(top level)" not in message
    assert f"  - {field}" in message


def test_the_bad_value_is_shown_once(tmp_path, example):
    data = {**copy.deepcopy(example), "name": "Churn"}
    _, message = load_error(tmp_path, data, name="Churn")
    assert message.count("'Churn'") == 1


def test_a_bad_inferred_severity_is_one_error_listing_the_choices(tmp_path, example):
    data = copy.deepcopy(example)
    data["validation"]["inferred"]["ranges"] = "fatal"
    _, message = load_error(tmp_path, data)
    assert "  - validation.inferred.ranges: " in message
    assert message.count("\n  - ") == 1
    assert all(choice in message for choice in ("'error'", "'warn'", "'off'"))


def test_several_errors_are_all_reported(tmp_path, example):
    data = copy.deepcopy(example)
    del data["target"]
    data["model"]["estimator"] = "RandomForest"
    data["source"]["parameters"] = {"a": 1}
    data["evaluation"]["thresholds"]["accuracy"] = {"lower": 0.9, "upper": 0.1}
    data["extra_key"] = 1
    _, message = load_error(tmp_path, data)
    for field in ("target", "model.estimator", "source", "evaluation.thresholds.accuracy", "extra_key"):
        assert f"  - {field}: " in message, (field, message)
    assert message.count("\n  - ") == 5


def test_invalid_yaml_names_the_file_and_the_position(tmp_path):
    path = tmp_path / "churn.yaml"
    path.write_text("name: churn\nsource: {uri: [unclosed\n")
    with pytest.raises(SpecError) as err:
        load_pipeline_spec(path)
    message = str(err.value)
    assert message.startswith(f"{path}: not valid YAML:")
    assert "line " in message


def test_a_yaml_list_is_not_a_spec(tmp_path):
    path = tmp_path / "churn.yaml"
    path.write_text("- name: churn\n- target: churned\n")
    with pytest.raises(SpecError, match="a pipeline spec must be a YAML mapping, got list") as err:
        load_pipeline_spec(path)
    assert str(err.value).startswith(str(path))


def test_a_missing_file_is_a_spec_error_naming_it(tmp_path):
    path = tmp_path / "nowhere" / "churn.yaml"
    with pytest.raises(SpecError, match="cannot read the pipeline spec: No such file") as err:
        load_pipeline_spec(path)
    assert str(err.value).startswith(str(path))


def test_an_unreadable_file_is_a_spec_error(tmp_path):
    # a directory in place of the file fails to read on every platform, even as root
    path = tmp_path / "churn.yaml"
    path.mkdir()
    with pytest.raises(SpecError, match="cannot read the pipeline spec") as err:
        load_pipeline_spec(path)
    assert str(err.value).startswith(str(path))


def test_a_spec_error_is_a_value_error():
    assert issubclass(SpecError, ValueError)


def test_parse_names_the_origin(example):
    with pytest.raises(SpecError, match=r"^somewhere\.yaml: invalid pipeline spec"):
        parse_pipeline_spec({**example, "target": None}, origin="somewhere.yaml")


# -- derived values ------------------------------------------------------------------------------


def _hash_of(example: dict[str, Any], mutate=None) -> str:
    data = copy.deepcopy(example)
    if mutate is not None:
        mutate(data)
    return parse_pipeline_spec(data).training_config_sha256()


def test_training_config_hash_is_stable(example):
    assert _hash_of(example) == _hash_of(example)
    assert len(_hash_of(example)) == 64


@pytest.mark.parametrize(
    "mutate",
    [
        _set("model.params.max_iter", 151),
        _set("model.params.l2_regularization", 0.1),
        _set("model.seed", 7),
        _set("model.holdout_fraction", 0.2),
        _set("model.estimator", "sklearn.ensemble.RandomForestClassifier"),
        _set("features.numeric", ["tenure_months", "monthly_charges"]),
        _set("target", "contract_ended"),
    ],
    ids=["param-value", "param-added", "seed", "holdout", "estimator", "features", "target"],
)
def test_training_config_hash_changes_with_what_training_uses(example, mutate):
    assert _hash_of(example, mutate) != _hash_of(example)


@pytest.mark.parametrize(
    "mutate",
    [
        _set("evaluation.thresholds.roc_auc", {"lower": 0.9}),
        _set("evaluation.change_thresholds.roc_auc", {"relative": 0.01}),
        _set("validation.min_rows", 5),
        _set("schedules.training", "@daily"),
        _set("description", "something else"),
    ],
    ids=["value-threshold", "change-threshold", "validation", "schedule", "description"],
)
def test_training_config_hash_ignores_what_training_does_not_use(example, mutate):
    assert _hash_of(example, mutate) == _hash_of(example)


def test_json_schema_has_the_top_level_properties():
    schema = pipeline_json_schema()
    assert isinstance(schema, dict)
    assert set(schema["properties"]) == set(PipelineSpec.model_fields)
    assert {"name", "source", "target", "features", "model", "evaluation", "validation", "schedules"} <= set(
        schema["properties"]
    )
    assert {"name", "source", "target", "model"} <= set(schema["required"])
    assert schema["additionalProperties"] is False
