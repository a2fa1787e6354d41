"""The HTML view of a drift report: one self-contained page (inline CSS and SVG, no external assets).

A header with the verdict, batch and reference sizes, the thresholds and the reasons; then one
table row per column, the columns furthest past their effect threshold first, each with a small
plot of reference vs current shares on the reference bins (or categories).
"""

from __future__ import annotations

import html
import math
from typing import Any

from mlops_ops.core.drift import ColumnDrift, DriftReport

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em;color:#1d232a;max-width:1280px}
h1{font-size:1.4em;margin-bottom:.2em} h2{font-size:1.1em;margin-top:1.6em}
.badge{display:inline-block;padding:.15em .6em;border-radius:.8em;font-weight:600;color:#fff}
.drift{background:#cf222e}.no_drift{background:#1a7f37}.insufficient_data{background:#9a6700}
.stable{background:#57606a}
table{border-collapse:collapse;width:100%;margin:.5em 0}
th,td{border:1px solid #d0d7de;padding:.3em .5em;text-align:left;vertical-align:middle}
th{background:#f6f8fa} tr.drifted td{background:#ffebe9} td.num{text-align:right;white-space:nowrap}
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em} dt{font-weight:600}
.note{color:#57606a;font-size:12px} .legend span{display:inline-block;width:.9em;height:.9em;margin:0 .3em}
svg{display:block}
"""

_REF = "#8c959f"
_CUR = "#0969da"
_WIDTH = 260
_HEIGHT = 64


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _num(value: float | None, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "&ndash;"
    return f"{value:.{digits}g}"


def _slots(col: ColumnDrift) -> list[tuple[str, float, float]]:
    """(label, reference share, current share) per plotted slot."""
    hist = col.histogram
    if col.kind == "categorical":
        return list(
            zip(hist.get("categories", []), hist.get("reference", []), hist.get("current", []), strict=False)
        )
    edges = hist.get("edges", [])
    ref = hist.get("reference", [])
    cur = hist.get("current", [])
    slots = [(f"below {edges[0]:g}" if edges else "below", 0.0, float(hist.get("below", 0.0)))]
    if len(edges) == 1:
        slots.append((f"= {edges[0]:g}", ref[0] if ref else 0.0, cur[0] if cur else 0.0))
    else:
        for j, (r, c) in enumerate(zip(ref, cur, strict=False)):
            slots.append((f"[{edges[j]:g}, {edges[j + 1]:g}{']' if j == len(ref) - 1 else ')'}", r, c))
    slots.append((f"above {edges[-1]:g}" if edges else "above", 0.0, float(hist.get("above", 0.0))))
    points = hist.get("points")
    if points:
        for v, r, c in zip(points["values"], points["reference"], points["current"], strict=False):
            slots.append((f"= {v:g}", r, c))
    return slots


def _svg(col: ColumnDrift) -> str:
    """Reference (grey) and current (blue) shares side by side for each slot."""
    slots = _slots(col)
    if not slots:
        return ""
    top = max([max(r, c) for _, r, c in slots] + [1e-12])
    slot_w = _WIDTH / len(slots)
    bar_w = max(slot_w / 2 - 0.5, 0.5)
    parts = [
        f"<svg width='{_WIDTH}' height='{_HEIGHT}' viewBox='0 0 {_WIDTH} {_HEIGHT}' role='img' "
        f"aria-label='{_e(col.name)}: reference vs current shares'>",
        f"<line x1='0' y1='{_HEIGHT - 0.5}' x2='{_WIDTH}' y2='{_HEIGHT - 0.5}' stroke='#d0d7de'/>",
    ]
    for i, (label, r, c) in enumerate(slots):
        x = i * slot_w
        tip = _e(f"{label}: reference {r:.1%}, current {c:.1%}")
        parts.append(f"<g><title>{tip}</title>")
        for offset, share, colour in ((0.0, r, _REF), (bar_w, c, _CUR)):
            height = (_HEIGHT - 2) * share / top
            parts.append(
                f"<rect x='{x + offset:.2f}' y='{_HEIGHT - 1 - height:.2f}' width='{bar_w:.2f}' "
                f"height='{height:.2f}' fill='{colour}'/>"
            )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def _effect_cell(col: ColumnDrift) -> str:
    if col.effect is None:
        return "&ndash;"
    sign = "&ge;" if col.effect >= col.effect_threshold else "&lt;"
    return f"{_num(col.effect)} {sign} {_num(col.effect_threshold)}"


def _row(col: ColumnDrift) -> str:
    m = col.missing
    missing = f"{m.reference_rate:.2%} &rarr; {m.current_rate:.2%}"
    if m.tested:
        missing += f"<br><span class='note'>p adj {_num(m.p_adjusted, 2)}</span>"
    badge = (
        "<span class='badge drift'>drifted</span>"
        if col.drifted
        else "<span class='badge stable'>stable</span>"
    )
    notes = []
    if col.note:
        notes.append(col.note)
    if col.unseen_share:
        notes.append(f"{col.unseen_share:.1%} in categories the reference does not name")
    if m.drifted:
        notes.append("missing rate drifted")
    note = "".join(f"<br><span class='note'>{_e(n)}</span>" for n in notes)
    return (
        f"<tr class='{'drifted' if col.drifted else ''}'>"
        f"<td><b>{_e(col.name)}</b>{note}</td><td>{_e(col.kind)}</td><td>{_e(col.test)}</td>"
        f"<td class='num'>{_num(col.statistic)}</td><td class='num'>{_num(col.p_value, 2)}</td>"
        f"<td class='num'>{_num(col.p_adjusted, 2)}</td><td class='num'>{_effect_cell(col)}</td>"
        f"<td class='num'>{_num(col.psi)}</td><td class='num'>{missing}</td><td>{badge}</td>"
        f"<td>{_svg(col)}</td></tr>"
    )


def _rule(report: DriftReport) -> str:
    cfg, share = report.config, report.drifted_importance_share
    if cfg.rule == "share":
        return f"rule share: drift_share {cfg.drift_share:.1%}"
    if cfg.rule == "importance":
        held = f"{share:.1%} of the importance drifted; " if share is not None else ""
        return f"rule importance: {held}importance_share {cfg.importance_share:.1%}"
    return "rule any: one drifted column is a dataset drift"


def render_drift_html(report: DriftReport, *, title: str, reference: str | None = None) -> str:
    """One self-contained HTML page for ``report``; every user string is escaped. ``reference``
    describes what the batch was compared with."""
    cfg = report.config
    settings = {
        "status": f"<span class='badge {_e(report.status)}'>{_e(report.status.replace('_', ' '))}</span>",
        "rows": f"{report.rows:,} (reference {report.reference_rows:,}; min_rows {cfg.min_rows:,})",
        "drifted columns": f"{len(report.drifted_columns)} of {len(report.columns)} "
        f"({report.drifted_share:.1%}; {_e(_rule(report))})",
        "significance": f"alpha {cfg.alpha:g} after {_e('Holm' if cfg.correction == 'holm' else 'Benjamini-Hochberg')} "
        f"correction over {report.family_size} tests",
        "effect thresholds": f"numeric Wasserstein/std {cfg.delta:g}; categorical Jensen-Shannon "
        f"{cfg.categorical_delta:g}; missing rate change {cfg.missing_delta:g}",
        "critical columns": _e(", ".join(cfg.critical_columns)) or "none",
        **({"reference": _e(reference)} if reference else {}),
    }
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1><dl>",
    ]
    parts.extend(f"<dt>{_e(key)}</dt><dd>{value}</dd>" for key, value in settings.items())
    parts.append("</dl><h2>Reasons</h2><ul>")
    parts.extend(f"<li>{_e(reason)}</li>" for reason in report.reasons)
    parts.append("</ul><h2>Columns</h2>")
    parts.append(
        f"<p class='legend'><span style='background:{_REF}'></span>reference"
        f"<span style='background:{_CUR}'></span>current (shares on the reference bins or categories)</p>"
    )
    parts.append(
        "<table><tr><th>column</th><th>kind</th><th>test</th><th>statistic</th><th>p</th>"
        "<th>p adjusted</th><th>effect vs threshold</th><th>PSI</th><th>missing rate</th>"
        "<th>verdict</th><th>shares</th></tr>"
    )
    for col in sorted(report.columns, key=lambda c: -c.ratio):
        parts.append(_row(col))
    parts.append("</table></body></html>")
    return "".join(parts)
