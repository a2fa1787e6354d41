"""One broken spec costs only its own DAGs: the other pipelines' DAGs are still built, and the
broken file shows in Airflow's import errors for the DAG file, naming the file and the field.

Parsed by a real DagBag (what the DAG processor runs) over the repository's dags/ folder, and by
the DAG processor's own parse entry point.
"""

from __future__ import annotations

import shutil

import pytest

from mlops_ops.config import SpecError
from mlops_ops.dag_factory import INVALID_SPECS_DAG_ID, build_dags
from tests.conftest import ROOT

GOOD_DAGS = {"churn_training", "churn_monitoring", "churn_batch_scoring", "churn_rollback"}
FRAUD = (
    "name: fraud\nsource: {uri: /data/*.csv}\ntarget: is_fraud\n"
    "model: {estimator: sklearn.linear_model.LogisticRegression}\n"
)

# each kind of broken spec, and what its import error must name
BROKEN = {
    "invalid field": (
        FRAUD.replace("LogisticRegression}", "LogisticRegression, holdout_fraction: 1.5}"),
        "model.holdout_fraction",
    ),
    "duplicate key": (FRAUD + "target: other\n", "line 5: duplicate key 'target'"),
    "nan": (FRAUD + "monitoring: {performance: {floor: .nan}}\n", "monitoring.performance.floor"),
    "negative seed": (FRAUD.replace("LogisticRegression}", "LogisticRegression, seed: -1}"), "model.seed"),
    "not utf-8": (FRAUD.replace("is_fraud", "is_fr\u00e4ud").encode("latin-1"), "not UTF-8 text"),
    "not yaml": ("name: fraud\nsource: {uri: [unclosed\n", "not valid YAML"),
    "name mismatch": (FRAUD.replace("name: fraud", "name: other"), "must match the file name"),
}


def _folder(tmp_path, broken: dict[str, str | bytes]):
    folder = tmp_path / "pipelines"
    folder.mkdir()
    shutil.copy(ROOT / "pipelines" / "churn.yaml", folder)
    for name, content in broken.items():
        path = folder / f"{name}.yaml"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return folder


def _dagbag(folder, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("MLOPS_PIPELINES", str(folder))
    return DagBag(dag_folder=str(ROOT / "dags"), safe_mode=True)


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_a_broken_spec_beside_a_good_one_costs_only_its_own_dags(tmp_path, monkeypatch, kind):
    content, named = BROKEN[kind]
    bag = _dagbag(_folder(tmp_path, {"fraud": content}), monkeypatch)
    assert GOOD_DAGS <= set(bag.dag_ids)
    assert not any(d.startswith("fraud_") for d in bag.dag_ids)
    assert INVALID_SPECS_DAG_ID not in bag.dag_ids  # the placeholder itself is never bagged
    assert list(bag.import_errors) == [str(ROOT / "dags" / "mlops_pipelines.py")]
    message = bag.import_errors[str(ROOT / "dags" / "mlops_pipelines.py")]
    assert "fraud.yaml" in message
    assert named in message
    assert "churn.yaml" not in message


def test_every_broken_spec_is_named_in_the_one_import_error(tmp_path, monkeypatch):
    broken = {f"p{i}": content for i, (content, _) in enumerate(BROKEN.values())}
    bag = _dagbag(_folder(tmp_path, broken), monkeypatch)
    assert GOOD_DAGS <= set(bag.dag_ids)
    (message,) = bag.import_errors.values()
    assert f"{len(BROKEN)} pipeline spec(s)" in message
    for (_, named), name in zip(BROKEN.values(), broken, strict=True):
        assert f"{name}.yaml" in message
        if "must match" not in named:
            assert named in message


def test_a_spec_whose_dags_cannot_be_built_costs_only_its_own(tmp_path, monkeypatch):
    # Mocked: a builder bug (no valid spec triggers one) must not cost the other pipelines' DAGs
    from mlops_ops import dag_factory

    real = dag_factory.build_pipeline_dags

    def failing(spec, **kwargs):
        if spec.name == "fraud":
            raise TypeError("builder bug")
        return real(spec, **kwargs)

    monkeypatch.setattr(dag_factory, "build_pipeline_dags", failing)
    folder = _folder(tmp_path, {"fraud": FRAUD})
    dags = build_dags(folder)
    assert GOOD_DAGS <= set(dags)
    assert (
        "fraud.yaml: its DAGs could not be built: TypeError: builder bug" in dags[INVALID_SPECS_DAG_ID].doc_md
    )


def test_two_files_with_the_same_pipeline_name_keep_the_first(tmp_path):
    folder = _folder(tmp_path, {})
    shutil.copy(folder / "churn.yaml", folder / "churn.yml")
    dags = build_dags(folder)
    assert GOOD_DAGS <= set(dags)
    assert "churn.yml: pipeline 'churn' is already defined by churn.yaml" in dags[INVALID_SPECS_DAG_ID].doc_md


def test_on_invalid_raise_lists_every_bad_spec(tmp_path):
    folder = _folder(tmp_path, {"fraud": BROKEN["nan"][0], "other": BROKEN["negative seed"][0]})
    with pytest.raises(SpecError) as err:
        build_dags(folder, on_invalid="raise")
    assert "fraud.yaml" in str(err.value)
    assert "other.yaml" in str(err.value)


def test_good_specs_only_give_no_placeholder(tmp_path):
    assert set(build_dags(_folder(tmp_path, {}))) == GOOD_DAGS


def test_the_dag_processor_records_the_import_error_and_serialises_the_good_dags(tmp_path, monkeypatch):
    """The DAG processor's own entry point: the good DAGs serialised, one import error stored."""
    from airflow.dag_processing.processor import DagFileParseRequest, _parse_file

    folder = _folder(tmp_path, {"fraud": BROKEN["nan"][0]})
    monkeypatch.setenv("MLOPS_PIPELINES", str(folder))
    request = DagFileParseRequest(
        file=str(ROOT / "dags" / "mlops_pipelines.py"),
        bundle_path=ROOT / "dags",
        bundle_name="dags-folder",
        callback_requests=[],
    )
    import structlog

    result = _parse_file(request, log=structlog.get_logger())
    assert result is not None
    assert {d.dag_id for d in result.serialized_dags} == GOOD_DAGS
    (message,) = result.import_errors.values()
    assert "fraud.yaml" in message
    assert "monitoring.performance.floor: NaN and infinite numbers are not allowed" in message
