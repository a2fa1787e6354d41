"""Human-readable HTML views of decision documents: self-contained, no external assets."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em;color:#1d232a;max-width:1100px}
h1{font-size:1.4em;margin-bottom:.2em} h2{font-size:1.1em;margin-top:1.6em}
.badge{display:inline-block;padding:.15em .6em;border-radius:.8em;font-weight:600;color:#fff}
.ok{background:#1a7f37}.bad{background:#cf222e}.warn{background:#9a6700}.info{background:#57606a}
table{border-collapse:collapse;width:100%;margin:.5em 0}
th,td{border:1px solid #d0d7de;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f6f8fa} tr.fail td{background:#ffebe9} tr.warn td{background:#fff8c5}
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em} dt{font-weight:600}
pre{background:#f6f8fa;padding:.8em;overflow:auto;font-size:12px}
"""

BADGES = {
    "promote": "ok",
    "passed": "ok",
    "success": "ok",
    "reject": "bad",
    "failed": "bad",
    "passed_with_warnings": "warn",
    "skipped": "info",
}


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return html.escape(json.dumps(value, default=str)[:400])
    return html.escape("" if value is None else str(value))


def render_html(
    title: str,
    status: str,
    summary: dict[str, Any],
    tables: Sequence[tuple[str, Sequence[str], Sequence[Sequence[Any]], Sequence[str]]] = (),
    document: Any = None,
) -> str:
    """One page: a status badge, a summary list, tables (caption, header, rows, row classes), raw JSON."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p><span class='badge {BADGES.get(status, 'info')}'>{html.escape(status)}</span></p><dl>",
    ]
    for key, value in summary.items():
        parts.append(f"<dt>{html.escape(str(key))}</dt><dd>{_cell(value)}</dd>")
    parts.append("</dl>")
    for caption, header, rows, classes in tables:
        parts.append(f"<h2>{html.escape(caption)}</h2><table><tr>")
        parts.extend(f"<th>{html.escape(h)}</th>" for h in header)
        parts.append("</tr>")
        for i, row in enumerate(rows):
            cls = classes[i] if i < len(classes) else ""
            parts.append(f"<tr class='{cls}'>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>")
        parts.append("</table>")
    if document is not None:
        parts.append("<h2>Document</h2><pre>")
        parts.append(html.escape(json.dumps(document, indent=2, sort_keys=True, default=str)))
        parts.append("</pre>")
    parts.append("</body></html>")
    return "".join(parts)


def validation_html(doc: dict[str, Any], title: str) -> str:
    rows, classes = [], []
    for r in doc["results"]:
        rows.append(
            [
                ("ok" if r["success"] else "FAIL"),
                r["severity"],
                r["origin"],
                r["type"],
                r["column"],
                r["message"],
            ]
        )
        classes.append("" if r["success"] else ("fail" if r["severity"] == "error" else "warn"))
    summary = {
        k: doc.get(k) for k in ("snapshot_sha256", "rows", "reference", "evaluated", "errors", "warnings")
    }
    return render_html(
        title,
        doc["status"],
        summary,
        [
            (
                "Expectations",
                ["result", "severity", "origin", "expectation", "column", "detail"],
                rows,
                classes,
            )
        ],
    )


def decision_html(doc: dict[str, Any], title: str) -> str:
    rows = [
        [r["verdict"], r["rule"], r["metric"], r["slice"], r["observed"], r["threshold"], r["message"]]
        for r in doc["rules"]
    ]
    classes = ["fail" if r["verdict"] == "fail" else "" for r in doc["rules"]]
    metrics = sorted(set(doc.get("challenger_metrics") or {}) | set(doc.get("champion_metrics") or {}))
    champ = doc.get("champion_metrics") or {}
    mrows = [[m, (doc.get("challenger_metrics") or {}).get(m), champ.get(m)] for m in metrics]
    summary = {
        "challenger version": doc.get("challenger_version"),
        "champion at evaluation": doc.get("baseline_version") or "none (no baseline)",
        "primary metric": doc.get("primary_metric"),
        "reasons": "; ".join(doc.get("reasons") or []),
        "holdout rows": doc.get("holdout_rows"),
    }
    return render_html(
        title,
        doc["status"],
        summary,
        [
            (
                "Rules",
                ["verdict", "rule", "metric", "slice", "observed", "threshold", "detail"],
                rows,
                classes,
            ),
            ("Metrics on the same holdout", ["metric", "challenger", "champion"], mrows, []),
        ],
        document=doc,
    )
