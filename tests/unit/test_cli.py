"""The mlops-ops command line: check, schema (demo is exercised in tests/dags/test_demo.py)."""

from __future__ import annotations

import json

from mlops_ops.cli import main
from tests.conftest import ROOT


def test_check_accepts_the_example_spec(capsys):
    assert main(["check", str(ROOT / "pipelines")]) == 0
    assert "ok   " in capsys.readouterr().out


def test_check_rejects_a_bad_spec_naming_the_field(tmp_path, capsys):
    bad = tmp_path / "churn.yaml"
    bad.write_text(
        (ROOT / "pipelines" / "churn.yaml").read_text().replace("target: churned", "targett: churned")
    )
    assert main(["check", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out
    assert "targett" in out
    assert "target: Field required" in out


def test_schema_is_json_with_the_spec_fields(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert {"name", "source", "target", "model", "evaluation", "validation", "schedules"} <= set(
        schema["properties"]
    )
