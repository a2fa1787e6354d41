"""One builder for ``models:/`` URIs, and no other place that spells them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlops_ops.core.model_uri import model_version_uri

PACKAGE = Path(__file__).resolve().parents[2] / "mlops_ops"


@pytest.mark.parametrize(
    ("name", "version", "uri"),
    [
        ("churn", "3", "models:/churn/3"),
        ("churn", 3, "models:/churn/3"),
        ("churn", "v12", "models:/churn/12"),
        ("churn", "V2", "models:/churn/2"),
        ("churn", " 4 ", "models:/churn/4"),
        ("house-prices_v2", "10", "models:/house-prices_v2/10"),
    ],
)
def test_a_version_uri_names_the_model_and_a_concrete_version(name, version, uri):
    assert model_version_uri(name, version) == uri


@pytest.mark.parametrize("version", ["0", "-1", "champion", "@champion", "3.0", "", None, True, "1/2", "03"])
def test_anything_but_a_positive_version_number_is_refused(version):
    with pytest.raises(ValueError, match="must be a positive integer"):
        model_version_uri("churn", version)


@pytest.mark.parametrize("name", ["", "a/b", "/churn"])
def test_an_empty_or_nested_model_name_is_refused(name):
    with pytest.raises(ValueError, match="registered model name"):
        model_version_uri(name, "1")


def test_no_other_module_builds_a_models_uri():
    spelled = re.compile(r"""f["']models:/""")
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "model_uri.py" and spelled.search(path.read_text())
    ]
    assert offenders == []
