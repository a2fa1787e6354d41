"""The HTML reports: every page comes from a packaged Jinja2 template on the shared layout, is
self-contained, and shows user strings (column names, categories, messages) as text, never markup."""

from __future__ import annotations

import importlib.resources
import math

import jinja2
import numpy as np
import pandas as pd
import pytest

from mlops_ops.core.drift import DriftConfig, build_reference_profile, detect_drift
from mlops_ops.core.drift_report import render_drift_html
from mlops_ops.core.reports import decision_html, environment, render, render_html, validation_html

EVIL = "<script>alert('x')</script>"
EVIL_ESCAPED = "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;"
TEMPLATES = ("base.html.j2", "macros.html.j2", "page.html.j2", "decision.html.j2", "drift.html.j2")


def assert_a_safe_page(page: str) -> None:
    assert page.startswith("<!doctype html><html lang='en'><head><meta charset='utf-8'>")
    assert page.endswith("</body></html>")
    assert "border-collapse:collapse" in page  # the shared layout's style sheet
    assert "<script" not in page.lower()
    lowered = page.lower().replace("xmlns='http://www.w3.org/2000/svg'", "")
    for external in ("http:", "https:", "src=", "href=", "url(", "@import", "<link", "<img", "<iframe"):
        assert external not in lowered, external


def test_the_templates_ship_in_the_package_and_autoescape():
    folder = importlib.resources.files("mlops_ops") / "templates"
    for name in TEMPLATES:
        assert (folder / name).is_file(), name
    env = environment()
    assert env.autoescape is True
    page = env.from_string("{{ x }}|{{ y }}|{{ z }}").render(x=EVIL, y=None, z=1.5)
    assert page == f"{EVIL_ESCAPED}||1.5"  # html.escape's entities, None shown empty
    with pytest.raises(jinja2.UndefinedError):
        render("page.html.j2", title="t")  # a name the template needs is missing: an error, not a gap


@pytest.mark.parametrize("evil", [EVIL, 'a&b "quoted" <b>bold</b>', "</td></tr></table><h1>x"])
def test_the_validation_page_escapes_columns_and_messages(evil):
    doc = {
        "status": "failed",
        "snapshot_sha256": evil,
        "rows": 10,
        "errors": 1,
        "results": [
            {
                "success": False,
                "severity": "error",
                "origin": "spec",
                "type": "expect_x",
                "column": evil,
                "message": f"{evil} failed",
            },
            {
                "success": True,
                "severity": "warn",
                "origin": "inferred",
                "type": "expect_y",
                "column": None,
                "message": "ok",
            },
        ],
    }
    page = validation_html(doc, f"Validation of {evil}")
    assert_a_safe_page(page)
    assert evil not in page
    assert f"<title>Validation of {_escape(evil)}</title>" in page
    assert f"<td>{_escape(evil)}</td>" in page
    assert "<tr class='fail'><td>FAIL</td><td>error</td>" in page
    assert "<span class='badge bad'>failed</span>" in page
    assert "<h2>Expectations</h2>" in page


def test_the_generic_page_shows_summary_tables_and_the_strict_document():
    page = render_html(
        f"Performance of {EVIL}",
        "retrain requested",
        {EVIL: 0.123456, "drop": math.nan, "none": None, "list": [1, EVIL]},
        [("Rows", ["a", EVIL], [[1.0, EVIL], [None, 2]], ["warn"])],
        document={"value": math.inf, "name": EVIL, "n": np.int64(3)},
    )
    assert_a_safe_page(page)
    assert f"<dt>{EVIL_ESCAPED}</dt><dd>0.1235</dd>" in page
    assert "<dt>drop</dt><dd>nan</dd>" in page
    assert "<dt>none</dt><dd></dd>" in page
    assert f"<th>{EVIL_ESCAPED}</th>" in page
    assert f"<tr class='warn'><td>1</td><td>{EVIL_ESCAPED}</td></tr>" in page
    assert "<tr class=''><td></td><td>2</td></tr>" in page
    assert "<span class='badge info'>retrain requested</span>" in page
    assert "&quot;value&quot;: null" in page  # the document under the one JSON rule
    assert "&quot;n&quot;: 3" in page


def test_the_decision_page_escapes_every_user_string():
    doc = {
        "status": "reject",
        "challenger_version": "2",
        "baseline_version": "1",
        "primary_metric": EVIL,
        "reasons": [EVIL],
        "rules": [
            {
                "verdict": "fail",
                "rule": EVIL,
                "metric": EVIL,
                "slice": EVIL,
                "observed": 0.5,
                "threshold": 0.6,
                "message": EVIL,
            }
        ],
        "slices": [
            {"slice": EVIL, "rows": 10, "status": "skipped", "note": EVIL, "challenger_metrics": {EVIL: 0.5}}
        ],
        "challenger_metrics": {EVIL: 0.5},
        "champion_metrics": {EVIL: math.nan},
        "bootstrap": {"status": "error", "message": EVIL},
        "importance": {"metric": EVIL, "error": EVIL},
    }
    page = decision_html(doc, EVIL)
    assert_a_safe_page(page)
    assert EVIL not in page
    assert page.count(EVIL_ESCAPED) >= 12
    assert (
        "<h2>Evidence: paired bootstrap</h2><p><span class='badge info'>error</span> " + EVIL_ESCAPED in page
    )
    assert f"<p>not computed: {EVIL_ESCAPED}</p>" in page
    assert "<tr class='skip'>" in page
    assert "<svg" not in page  # no interval to plot


def _drift_doc():
    rng = np.random.default_rng(5)
    reference = pd.DataFrame(
        {EVIL: rng.normal(0, 1, 2_000), "plan": pd.array(rng.choice([EVIL, "a&b"], 2_000), dtype="string")}
    )
    current = pd.DataFrame(
        {EVIL: rng.normal(0.6, 1, 1_000), "plan": pd.array(rng.choice([EVIL, "a&b"], 1_000), dtype="string")}
    )
    report = detect_drift(build_reference_profile(reference), current, DriftConfig(critical_columns=(EVIL,)))
    return report


def test_the_drift_page_from_a_report_or_its_document_is_the_same():
    report = _drift_doc()
    page = render_drift_html(report, title=EVIL)
    assert_a_safe_page(page)
    assert page == render_drift_html(report.to_dict(), title=EVIL)
    assert f"<td><b>{EVIL_ESCAPED}</b>" in page
    assert f"aria-label='{EVIL_ESCAPED}: reference vs current shares'" in page
    assert f"<title>{EVIL_ESCAPED}: reference" in page  # a category in a bar's tooltip
    assert "<h2>Reference</h2>" not in page
    assert "data interval judged" not in page


def test_the_drift_page_shows_the_reference_the_interval_and_the_prediction_drift():
    report = _drift_doc()
    doc = {
        **report.to_dict(),
        "pipeline": "churn",
        "data_interval": {"start": "2026-03-03T00:00:00+00:00", "end": "2026-03-04T00:00:00+00:00"},
        "reference": {
            "kind": "seasonal",
            "data_interval": {"start": "2025-02-24", "end": "2025-03-10"},
            "why": f"lag_days 365 around the batch {EVIL}",
            "rows": 4_200,
        },
        "prediction": report.to_dict(),
    }
    page = render_drift_html(doc, title="Drift of churn")
    assert_a_safe_page(page)
    assert (
        "<dt>data interval judged</dt><dd>2026-03-03T00:00:00+00:00 to 2026-03-04T00:00:00+00:00</dd>" in page
    )
    assert "<h2>Reference</h2>" in page
    assert "<dt>kind</dt><dd>seasonal</dd>" in page
    assert "<dt>data interval</dt><dd>2025-02-24 to 2025-03-10</dd>" in page
    assert f"<dt>why</dt><dd>lag_days 365 around the batch {EVIL_ESCAPED}</dd>" in page
    assert "<hr>" in page
    assert "<h1>Prediction drift</h1>" in page
    assert page.count("<table>") == 2
    assert page.count("<svg") == 4
    plain = render_drift_html({**doc, "reference": "the champion's training data"}, title="t")
    assert "<dt>reference</dt><dd>the champion&#x27;s training data</dd>" in plain


def _escape(text: str) -> str:
    import html

    return html.escape(text)
