"""Strict specs: duplicate keys, NaN/infinite numbers, out-of-range seeds, non-UTF-8 files and
credentials in URIs are refused when a spec is parsed, naming the file, the line or field; and
``mlops-ops check`` reports every file, whatever goes wrong with one of them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from mlops_ops.cli import main
from mlops_ops.config import SpecError, load_pipeline_spec, parse_pipeline_spec
from tests.conftest import ROOT

EXAMPLE_TEXT = (ROOT / "pipelines" / "churn.yaml").read_text()

# A small, complete spec written out line by line, so that each case can add a line at a depth.
MINIMAL = """\
name: churn
source:
  uri: /data/churn/*.parquet
target: churned
features:
  numeric: [tenure_months, monthly_charges]
  categorical: [contract]
model:
  estimator: sklearn.linear_model.LogisticRegression
  params:
    C: 1.0
  seed: 7
evaluation:
  primary_metric: roc_auc
  thresholds:
    roc_auc: {lower: 0.7}
  slices:
    - column: contract
      min_rows: 10
monitoring:
  source: {uri: "/data/churn/{{ ds }}.parquet"}
  performance:
    floor: 0.6
"""


def _spec_file(tmp_path: Path, text: str, name: str = "churn") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def _refusal(tmp_path: Path, text: str) -> str:
    path = _spec_file(tmp_path, text)
    with pytest.raises(SpecError) as err:
        load_pipeline_spec(path)
    message = str(err.value)
    assert message.startswith(str(path)), message
    return message


def test_the_minimal_spec_used_here_loads(tmp_path):
    spec = load_pipeline_spec(_spec_file(tmp_path, MINIMAL))
    assert spec.model.seed == 7
    assert spec.monitoring.performance.floor == 0.6


# -- duplicate keys, at any depth -------------------------------------------------------------


@pytest.mark.parametrize(
    ("after", "added", "key", "line"),
    [
        ("target: churned\n", "target: other\n", "target", 5),  # top level
        ("  seed: 7\n", "  seed: 8\n", "seed", 13),  # the last seed would win
        ("    C: 1.0\n", "    C: 2.0\n", "C", 12),  # inside free-form params
        # a second thresholds block would silently replace the first
        ("    roc_auc: {lower: 0.7}\n", "  thresholds:\n    accuracy: {lower: 0.9}\n", "thresholds", 17),
        ("      min_rows: 10\n", "      column: region\n", "column", 20),  # in a list item
    ],
)
def test_a_duplicate_key_is_refused_naming_file_line_and_key(tmp_path, after, added, key, line):
    assert after in MINIMAL
    message = _refusal(tmp_path, MINIMAL.replace(after, after + added, 1))
    assert f"line {line}: duplicate key {key!r}" in message
    assert "first given at line" in message


def test_a_duplicate_key_in_a_flow_mapping_on_one_line_is_refused(tmp_path):
    text = MINIMAL.replace("roc_auc: {lower: 0.7}", "roc_auc: {lower: 0.7, lower: 0.1}")
    message = _refusal(tmp_path, text)
    assert "line 16: duplicate key 'lower'" in message


def test_merge_keys_still_override_as_yaml_says(tmp_path):
    text = MINIMAL.replace(
        "  params:\n    C: 1.0\n", "  params:\n    <<: {C: 5.0, max_iter: 50}\n    C: 1.0\n"
    )
    spec = load_pipeline_spec(_spec_file(tmp_path, text))
    assert spec.model.params == {"C": 1.0, "max_iter": 50}


# -- NaN and infinite numbers, anywhere -------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("floor: 0.6", "floor: .nan", "monitoring.performance.floor"),  # NaN switches the check off
        ("floor: 0.6", "floor: .NaN", "monitoring.performance.floor"),
        ("{lower: 0.7}", "{lower: .nan}", "evaluation.thresholds.roc_auc.lower"),
        ("{lower: 0.7}", "{lower: -.inf}", "evaluation.thresholds.roc_auc.lower"),
        ("C: 1.0", "C: .inf", "model.params.C"),  # free-form mapping
        ("min_rows: 10", "min_rows: .inf", "evaluation.slices.0.min_rows"),
        ("floor: 0.6", "floor: 0.6\n    tolerance: .Inf", "monitoring.performance.tolerance"),
    ],
)
def test_nan_and_infinite_numbers_are_refused_naming_the_field(tmp_path, old, new, field):
    message = _refusal(tmp_path, MINIMAL.replace(old, new, 1))
    assert f"  - {field}: NaN and infinite numbers are not allowed" in message


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-Infinity", "infinity"])
def test_nan_written_as_a_string_is_refused_by_every_float_field(tmp_path, value):
    # a quoted "nan" is a string in YAML, and pydantic would read it as a float
    for old, new, field in (
        ("floor: 0.6", f"floor: '{value}'", "monitoring.performance.floor"),
        ("{lower: 0.7}", f"{{lower: '{value}'}}", "evaluation.thresholds.roc_auc.lower"),
        ("  seed: 7\n", f"  seed: 7\n  holdout_fraction: '{value}'\n", "model.holdout_fraction"),
    ):
        message = _refusal(tmp_path, MINIMAL.replace(old, new, 1))
        assert f"  - {field}: " in message, message
        assert "finite" in message, message


def test_every_float_field_of_the_schema_refuses_nan():
    from mlops_ops import config

    models = [v for v in vars(config).values() if isinstance(v, type) and issubclass(v, config._Model)]
    assert len(models) > 10
    for model in models:
        assert model.model_config.get("allow_inf_nan") is False, model


def test_nan_is_refused_in_an_already_loaded_mapping_too():
    data = yaml.safe_load(MINIMAL)
    data["model"]["params"]["tol"] = float("nan")
    with pytest.raises(SpecError, match=r"model\.params\.tol: NaN and infinite"):
        parse_pipeline_spec(data, origin="inline")


# -- seeds --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("  seed: 7", "  seed: -1", "model.seed"),
        ("  seed: 7", "  seed: 4294967296", "model.seed"),
        ("  seed: 7", "  seed: -99999999999999999999", "model.seed"),
        (
            "  primary_metric: roc_auc",
            "  primary_metric: roc_auc\n  bootstrap: {seed: -5}",
            "evaluation.bootstrap.seed",
        ),
        ("    C: 1.0", "    C: 1.0\n    random_state: -3", "model.params.random_state"),
        ("    C: 1.0", "    C: 1.0\n    random_state: 4294967296", "model.params.random_state"),
    ],
)
def test_an_out_of_range_seed_is_refused_at_parse_time_naming_the_field(tmp_path, old, new, field):
    message = _refusal(tmp_path, MINIMAL.replace(old, new, 1))
    assert f"  - {field}: " in message, message


@pytest.mark.parametrize("seed", [0, 2**32 - 1])
def test_the_seed_range_bounds_are_accepted(tmp_path, seed):
    text = MINIMAL.replace("  seed: 7", f"  seed: {seed}").replace(
        "C: 1.0", f"C: 1.0\n    random_state: {seed}"
    )
    spec = load_pipeline_spec(_spec_file(tmp_path, text))
    assert spec.model.seed == seed
    assert spec.model.params["random_state"] == seed


# -- encodings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "offset", "line"),
    [
        (MINIMAL.replace("churned", "churn\u00e9d").encode("latin-1"), MINIMAL.index("churned") + 5, 4),
        (b"name: churn\n" + b"\xff\xfe garbage\n", 12, 2),
        (MINIMAL.encode("utf-16"), 0, 1),  # a UTF-16 file starts with a byte-order mark 0xff 0xfe
        (MINIMAL.encode()[:-40] + b"\xe2\x82\n" + MINIMAL.encode()[-40:], len(MINIMAL.encode()) - 40, 21),
    ],
)
def test_a_file_that_is_not_utf8_is_refused_naming_offset_and_line(tmp_path, raw, offset, line):
    path = tmp_path / "churn.yaml"
    path.write_bytes(raw)
    with pytest.raises(SpecError) as err:
        load_pipeline_spec(path)
    message = str(err.value)
    assert message.startswith(f"{path}: not UTF-8 text")
    assert f"at offset {offset} (line {line})" in message
    assert "save the file as UTF-8" in message


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "churn.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + MINIMAL.encode())
    assert load_pipeline_spec(path).name == "churn"


# -- credentials in a source URI ---------------------------------------------------------------


@pytest.mark.parametrize(
    "uri", ["https://user:s3cret@files.example.com/churn.csv", "s3://AKIA:s3cret@bucket/churn/*.parquet"]
)
def test_a_source_uri_with_a_password_is_refused(tmp_path, uri):
    message = _refusal(tmp_path, MINIMAL.replace("/data/churn/*.parquet", uri))
    assert "  - source.uri: " in message
    assert "conn_id_storage" in message


# -- schedules: start date and catch-up -------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("2026-02-01", dt.datetime(2026, 2, 1, tzinfo=dt.UTC)),
        ("2026-02-01T06:30:00", dt.datetime(2026, 2, 1, 6, 30, tzinfo=dt.UTC)),
        ("2026-02-01T06:30:00+02:00", dt.datetime(2026, 2, 1, 4, 30, tzinfo=dt.UTC)),
        ("'2026-02-01'", dt.datetime(2026, 2, 1, tzinfo=dt.UTC)),
    ],
)
def test_schedules_start_date_and_catchup(tmp_path, written, expected):
    text = MINIMAL + f"schedules:\n  monitoring: '@daily'\n  start_date: {written}\n  catchup: true\n"
    spec = load_pipeline_spec(_spec_file(tmp_path, text))
    assert spec.schedules.start_date == expected
    assert spec.schedules.start_date.tzinfo is not None
    assert spec.schedules.catchup is True


def test_schedules_default_start_date_and_no_catchup(tmp_path):
    spec = load_pipeline_spec(_spec_file(tmp_path, MINIMAL))
    assert spec.schedules.start_date == dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert spec.schedules.catchup is False


@pytest.mark.parametrize("written", ["yesterday", "'2026-02-30'", "'2026-13-01'", "12"])
def test_a_bad_start_date_is_refused_naming_the_field(tmp_path, written):
    message = _refusal(tmp_path, MINIMAL + f"schedules:\n  start_date: {written}\n")
    assert "  - schedules.start_date: " in message


@pytest.mark.parametrize("written", ["2026-13-01", "2026-02-30", "2026-02-01 25:00:00"])
def test_an_impossible_yaml_date_is_refused_naming_its_line(tmp_path, written):
    # PyYAML reads these as dates and fails with a bare ValueError; it used to escape as a crash
    message = _refusal(tmp_path, MINIMAL + f"schedules:\n  start_date: {written}\n")
    assert "not valid YAML" in message
    assert f"{written!r} is not a valid date or time" in message
    assert "line 25" in message


# -- mlops-ops check: every file, whatever happens ---------------------------------------------


def test_check_reports_every_file_and_never_stops_at_the_first_failure(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "pipelines"
    folder.mkdir()
    (folder / "a_latin1.yaml").write_bytes(
        MINIMAL.replace("churn", "a_latin1").replace("e", "\u00e9").encode("latin-1")
    )
    (folder / "b_dup.yaml").write_text(MINIMAL.replace("churn\n", "b_dup\n", 1) + "target: x\n")
    (folder / "c_nan.yaml").write_text(MINIMAL.replace("churn\n", "c_nan\n", 1).replace("0.6", ".nan"))
    (folder / "d_crash.yaml").write_text(MINIMAL.replace("churn\n", "d_crash\n", 1))
    (folder / "e_good.yaml").write_text(MINIMAL.replace("name: churn", "name: e_good"))
    (folder / "f_seed.yaml").write_text(
        MINIMAL.replace("churn\n", "f_seed\n", 1).replace("seed: 7", "seed: -1")
    )

    # Mocked: an unforeseen crash (a bug, not a bad spec) on one file, which no real spec triggers
    from mlops_ops import config

    real = config.load_pipeline_spec

    def crashing(path):
        if Path(path).name == "d_crash.yaml":
            raise RuntimeError("boom")
        return real(path)

    monkeypatch.setattr(config, "load_pipeline_spec", crashing)
    assert main(["check", str(folder)]) == 1
    captured = capsys.readouterr()
    out = captured.out.splitlines()
    heads = [line[:4] for line in out if line[:4] in ("FAIL", "ok  ")]
    assert heads == ["FAIL", "FAIL", "FAIL", "FAIL", "ok  ", "FAIL"], captured.out
    assert "a_latin1.yaml: not UTF-8 text" in captured.out
    assert "b_dup.yaml: line 24: duplicate key 'target'" in captured.out
    assert "c_nan.yaml: invalid pipeline spec" in captured.out
    assert "monitoring.performance.floor: NaN and infinite" in captured.out
    assert "d_crash.yaml: could not be checked: RuntimeError: boom" in captured.out
    assert "e_good.yaml: pipeline 'e_good'" in captured.out
    assert "model.seed: " in captured.out
    assert "5 of 6 spec(s) failed" in captured.err


def test_check_exits_zero_when_every_file_passes(tmp_path, capsys):
    (tmp_path / "churn.yaml").write_text(EXAMPLE_TEXT)
    assert main(["check", str(tmp_path)]) == 0


def test_nested_yaml_aliases_are_walked_once(tmp_path):
    # nine levels of nine aliases: walking every path would visit 9**9 mappings
    levels = ["a0: &a0 {x: 1.0}"] + [
        f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)
    ]
    text = MINIMAL.replace("    C: 1.0\n", "    C: 1.0\n    deep: {" + ", ".join(levels) + "}\n")
    spec = load_pipeline_spec(_spec_file(tmp_path, text))
    assert "deep" in spec.model.params


# -- numbers are numbers: pydantic's lax mode would read true as 1 and "0.7" as 0.7 -------------


@pytest.mark.parametrize(
    ("old", "new", "field", "said"),
    [
        ("  seed: 7\n", "  seed: true\n", "model.seed", "boolean"),
        ("  seed: 7\n", "  seed: '7'\n", "model.seed", "text"),
        ("  seed: 7\n", "  seed: 7.0\n", "model.seed", "whole number"),
        ("  seed: 7\n", "  seed: 7.5\n", "model.seed", "whole number"),
        ("{lower: 0.7}", "{lower: true}", "evaluation.thresholds.roc_auc.lower", "boolean"),
        ("{lower: 0.7}", "{lower: '0.7'}", "evaluation.thresholds.roc_auc.lower", "text"),
        ("floor: 0.6", "floor: false", "monitoring.performance.floor", "boolean"),
        ("min_rows: 10", "min_rows: '10'", "evaluation.slices.0.min_rows", "text"),
        ("min_rows: 10", "min_rows: 10.5", "evaluation.slices.0.min_rows", "whole number"),
    ],
)
def test_a_number_field_takes_only_a_number_as_written(tmp_path, old, new, field, said):
    assert old in MINIMAL
    message = _refusal(tmp_path, MINIMAL.replace(old, new, 1))
    assert f"  - {field}: " in message, message
    assert said in message, message


def test_numbers_as_written_are_still_accepted(tmp_path):
    text = MINIMAL.replace("{lower: 0.7}", "{lower: 1}", 1)  # an int where a float is expected
    spec = load_pipeline_spec(_spec_file(tmp_path, text))
    assert spec.evaluation.thresholds["roc_auc"].lower == 1.0


def test_a_field_error_names_the_line_of_the_field(tmp_path):
    text = MINIMAL.replace("  seed: 7\n", "  seed: -3\n", 1)
    line = text.splitlines().index("  seed: -3") + 1
    message = _refusal(tmp_path, text)
    assert "  - model.seed: " in message, message
    assert f"[line {line}]" in message, message
