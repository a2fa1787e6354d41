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
    """The gate decision: summary, rules with verdict badges, the bootstrap interval (numbers and an
    inline SVG plot against the margin), slices, metrics, permutation importance, the raw JSON."""
    rules = doc.get("rules") or []
    counts = {v: sum(r.get("verdict") == v for r in rules) for v in ("pass", "fail", "skip")}
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}{_DECISION_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{_badge(doc.get('status', ''), BADGES.get(str(doc.get('status')), 'info'))}</p><dl>",
    ]
    summary = {
        "challenger version": doc.get("challenger_version"),
        "champion at evaluation": doc.get("baseline_version") or "none (no baseline)",
        "primary metric": doc.get("primary_metric"),
        "holdout rows": doc.get("holdout_rows"),
        "snapshot": doc.get("snapshot_sha256"),
        "rules": f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped (not gated)",
    }
    for key, value in summary.items():
        parts.append(f"<dt>{html.escape(key)}</dt><dd>{_cell(value)}</dd>")
    parts.append("</dl><h2>Reasons</h2><ul>")
    parts.extend(f"<li>{html.escape(str(r))}</li>" for r in doc.get("reasons") or [])
    parts.append("</ul>")

    parts.append(
        _table_open("Rules", ["verdict", "rule", "metric", "slice", "observed", "threshold", "detail"])
    )
    for r in rules:
        verdict = str(r.get("verdict"))
        parts.append(
            f"<tr class='{_ROW_CLASS.get(verdict, '')}'><td>{_badge(verdict, _VERDICT_BADGES.get(verdict, 'info'))}</td>"
            + "".join(
                f"<td>{_cell(r.get(k))}</td>"
                for k in ("rule", "metric", "slice", "observed", "threshold", "message")
            )
            + "</tr>"
        )
    parts.append("</table>")

    parts.append(_bootstrap_section(doc.get("bootstrap")))
    parts.append(_slices_section(doc.get("slices") or [], doc.get("primary_metric") or ""))

    new, old = doc.get("challenger_metrics") or {}, doc.get("champion_metrics") or {}
    parts.append(_table_open("Metrics on the same holdout", ["metric", "challenger", "champion"]))
    for m in sorted(set(new) | set(old)):
        parts.append(f"<tr><td>{_cell(m)}</td><td>{_cell(new.get(m))}</td><td>{_cell(old.get(m))}</td></tr>")
    parts.append("</table>")

    parts.append(_importance_section(doc.get("importance")))
    parts.append("<h2>Document</h2><pre>")
    parts.append(html.escape(json.dumps(doc, indent=2, sort_keys=True, default=str)))
    parts.append("</pre></body></html>")
    return "".join(parts)


_DECISION_CSS = """
tr.skip td{background:#f6f8fa;color:#57606a} td.num{text-align:right;font-variant-numeric:tabular-nums}
.bar{display:inline-block;height:.8em;background:#0969da;vertical-align:middle}
.bar.neg{background:#cf222e} svg text{font:11px system-ui,sans-serif}
"""
_VERDICT_BADGES = {"pass": "ok", "fail": "bad", "skip": "info"}
_ROW_CLASS = {"fail": "fail", "skip": "skip"}


def _badge(text: Any, kind: str) -> str:
    return f"<span class='badge {html.escape(kind)}'>{html.escape(str(text))}</span>"


def _table_open(caption: str, header: Sequence[str]) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    return f"<h2>{html.escape(caption)}</h2><table><tr>{cells}</tr>"


def _number(value: Any, fmt: str = "{:+.4f}") -> str:
    return fmt.format(value) if isinstance(value, int | float) and not isinstance(value, bool) else "n/a"


def _bootstrap_section(boot: dict[str, Any] | None) -> str:
    if not boot:
        return ""
    status = str(boot.get("status"))
    head = f"<h2>Evidence: paired bootstrap</h2><p>{_badge(status, _VERDICT_BADGES.get(status, 'info'))} "
    if status not in ("pass", "fail") or boot.get("lower") is None or boot.get("upper") is None:
        return head + html.escape(str(boot.get("message") or "")) + "</p>"
    require = str(boot.get("require", "")).replace("_", "-")
    level = boot.get("confidence")
    rows = {
        "metric": f"{boot.get('metric')} ({'higher' if boot.get('higher_is_better') else 'lower'} is better)",
        "challenger / champion": f"{_number(boot.get('challenger'), '{:.4f}')} / "
        f"{_number(boot.get('champion'), '{:.4f}')}",
        "difference (positive = challenger better)": _number(boot.get("estimate")),
        f"{_number(level, '{:.0%}')} confidence interval": f"[{_number(boot.get('lower'))}, "
        f"{_number(boot.get('upper'))}]",
        "requirement": f"{require}: lower bound > {_number(boot.get('threshold'), '{:+.4g}')} "
        f"(margin {_number(boot.get('margin'), '{:.4g}')})",
        "resamples": f"{boot.get('valid_resamples')} of {boot.get('resamples')} valid, "
        f"{boot.get('rows')} rows, seed {boot.get('seed')}, {boot.get('method')} interval",
    }
    parts = [head, html.escape(str(boot.get("message") or "")), "</p><dl>"]
    parts.extend(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in rows.items())
    parts.append("</dl>")
    parts.append(
        _interval_svg(boot["lower"], boot["upper"], boot.get("estimate"), boot.get("threshold"), status)
    )
    return "".join(parts)


def _interval_svg(
    lower: float, upper: float, estimate: float | None, threshold: float | None, status: str
) -> str:
    """A number line with zero, the threshold (dashed) and the interval with its point estimate."""
    marks = [v for v in (lower, upper, estimate, threshold, 0.0) if isinstance(v, int | float)]
    lo, hi = min(marks), max(marks)
    pad = (hi - lo) * 0.12 or 0.01
    lo, hi = lo - pad, hi + pad
    width, left, right = 480, 20, 460

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * (right - left)

    color = "#1a7f37" if status == "pass" else "#cf222e"
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='78' role='img' "
        f"aria-label='bootstrap interval [{lower:+.4f}, {upper:+.4f}] against threshold'>",
        f"<line x1='{left}' y1='40' x2='{right}' y2='40' stroke='#8c959f'/>",
        f"<line x1='{x(0.0):.1f}' y1='22' x2='{x(0.0):.1f}' y2='58' stroke='#57606a'/>",
        f"<text x='{x(0.0):.1f}' y='72' text-anchor='middle'>0</text>",
    ]
    if isinstance(threshold, int | float):
        out += [
            f"<line x1='{x(threshold):.1f}' y1='14' x2='{x(threshold):.1f}' y2='62' stroke='#9a6700' "
            "stroke-dasharray='4 3' stroke-width='2'/>",
            f"<text x='{x(threshold):.1f}' y='11' text-anchor='middle' fill='#9a6700'>"
            f"threshold {threshold:+.4g}</text>",
        ]
    out += [
        f"<line x1='{x(lower):.1f}' y1='40' x2='{x(upper):.1f}' y2='40' stroke='{color}' stroke-width='6' "
        "stroke-linecap='round'/>",
        f"<text x='{x(lower):.1f}' y='30' text-anchor='end'>{lower:+.4f}</text>",
        f"<text x='{x(upper):.1f}' y='30' text-anchor='start'>{upper:+.4f}</text>",
    ]
    if isinstance(estimate, int | float):
        out.append(
            f"<circle cx='{x(estimate):.1f}' cy='40' r='5' fill='#fff' stroke='{color}' stroke-width='2'/>"
        )
    out.append("</svg>")
    return "".join(out)


def _slices_section(slices: list[dict[str, Any]], primary: str) -> str:
    if not slices:
        return ""
    parts = [
        _table_open(
            "Slices",
            ["slice", "rows", "status", f"challenger {primary}", f"champion {primary}", "note"],
        )
    ]
    for s in slices:
        status = str(s.get("status"))
        new = (s.get("challenger_metrics") or {}).get(primary)
        old = (s.get("champion_metrics") or {}).get(primary)
        parts.append(
            f"<tr class='{'skip' if status == 'skipped' else ''}'><td>{_cell(s.get('slice'))}</td>"
            f"<td class='num'>{_cell(s.get('rows'))}</td><td>{_cell(status)}</td>"
            f"<td class='num'>{_cell(new)}</td><td class='num'>{_cell(old)}</td><td>{_cell(s.get('note'))}</td></tr>"
        )
    parts.append("</table>")
    return "".join(parts)


def _importance_section(importance: dict[str, Any] | None) -> str:
    if not importance:
        return ""
    metric = str(importance.get("metric"))
    if importance.get("error"):
        return f"<h2>Permutation importance</h2><p>not computed: {html.escape(str(importance['error']))}</p>"
    features = importance.get("features") or []
    top = max([abs(f.get("importance") or 0.0) for f in features] + [1e-12])
    parts = [
        "<h2>Permutation importance</h2>",
        f"<p>Drop in {html.escape(metric)} when a column is shuffled (challenger, "
        f"{_cell(importance.get('rows'))} holdout rows, {_cell(importance.get('n_repeats'))} repeats; "
        f"baseline {_cell(importance.get('baseline'))}).</p>",
        "<table><tr><th>feature</th><th>importance</th><th>std</th><th></th></tr>",
    ]
    for f in features:
        value = f.get("importance")
        share = abs(value or 0.0) / top * 100
        neg = " neg" if (value or 0.0) < 0 else ""
        parts.append(
            f"<tr><td>{_cell(f.get('feature'))}</td><td class='num'>{_cell(value)}</td>"
            f"<td class='num'>{_cell(f.get('std'))}</td>"
            f"<td><span class='bar{neg}' style='width:{share * 2:.0f}px'></span></td></tr>"
        )
    parts.append("</table>")
    return "".join(parts)
