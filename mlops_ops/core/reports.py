"""Human-readable HTML views of decision documents, rendered from the Jinja2 templates shipped in
``mlops_ops/templates`` (``*.html.j2``).

Every page extends ``base.html.j2``: one self-contained document (inline CSS and SVG, no external
assets). Autoescaping is on and every ``{{ value }}`` is escaped with :func:`html.escape` (so
``'`` is written ``&#x27;``), including column names, categories and titles; only the templates'
own markup and macro output are trusted. Python here turns a document into plain view data
(strings, numbers, plot geometry); the templates hold all markup.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import jinja2
from markupsafe import Markup

from mlops_ops.core.jsonsafe import json_dumps

BADGES = {
    "promote": "ok",
    "passed": "ok",
    "success": "ok",
    "reject": "bad",
    "failed": "bad",
    "passed_with_warnings": "warn",
    "skipped": "info",
}
_VERDICT_BADGES = {"pass": "ok", "fail": "bad", "skip": "info"}
_ROW_CLASS = {"fail": "fail", "skip": "skip"}

Table = tuple[str, Sequence[str], Sequence[Sequence[Any]], Sequence[str]]


# --------------------------------------------------------------------------- the template environment


def _escaped(value: Any) -> Markup:
    """What ``{{ value }}`` writes: trusted markup as is, anything else through :func:`html.escape`."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape("" if value is None else str(value)))


def cell(value: Any) -> str:
    """A table or summary cell: floats to 4 significant digits, containers as (cut) JSON, None empty."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return json_dumps(value)[:400]
    return "" if value is None else str(value)


def num(value: float | None, digits: int = 3) -> str:
    """A statistic to ``digits`` significant digits; a dash when missing or not finite."""
    if value is None or not math.isfinite(value):
        return Markup("&ndash;")
    return f"{value:.{digits}g}"


def interval_text(value: Any) -> str | None:
    """A data interval as text: ``{"start": a, "end": b, "how": why}`` -> ``a to b (why)``; a
    ``[a, b]`` pair -> ``a to b``; a string as is; None when not stated."""
    if value is None or value == {}:
        return None
    if isinstance(value, Mapping):
        start = value.get("start", value.get("data_interval_start"))
        end = value.get("end", value.get("data_interval_end"))
        if start is not None or end is not None:
            how = value.get("how")
            return f"{start} to {end}" + (f" ({how})" if how else "")
        return ", ".join(f"{k} {v}" for k, v in value.items())
    if isinstance(value, list | tuple) and len(value) == 2:
        return f"{value[0]} to {value[1]}"
    return str(value)


#: The summary term under which every report states the data interval it judged.
INTERVAL_TERM = "data interval judged"


def _with_interval(summary: Mapping[str, Any], document: Any) -> dict[str, Any]:
    """``summary`` with the document's ``data_interval`` as its first entry, when it states one."""
    judged = interval_text(document.get("data_interval")) if isinstance(document, Mapping) else None
    if judged is None or INTERVAL_TERM in summary:
        return dict(summary)
    return {INTERVAL_TERM: judged, **summary}


def fmt(value: Any, spec: str) -> str:
    """``format(value, spec)``, e.g. ``{{ x|fmt(".1f") }}``."""
    return format(value, spec)


@cache
def environment() -> jinja2.Environment:
    """The Jinja2 environment of the report templates (autoescaped; undefined names are errors)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("mlops_ops", "templates"),
        autoescape=True,
        finalize=_escaped,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        cell=cell,
        num=num,
        fmt=fmt,
        json_pretty=lambda doc: json_dumps(doc, indent=2, sort_keys=True),
    )
    return env


def render(template: str, **context: Any) -> str:
    """Render ``templates/<template>`` with ``context``; returns the whole HTML page.

    :raises jinja2.TemplateError: the template is missing or uses a name ``context`` lacks.
    """
    return environment().get_template(template).render(**context)


# --------------------------------------------------------------------------- generic page


def render_html(
    title: str,
    status: str,
    summary: Mapping[str, Any],
    tables: Sequence[Table] = (),
    document: Any = None,
) -> str:
    """One page: a status badge, a summary list, tables (caption, header, rows, row classes), raw JSON.

    Summary and cell values are shown by :func:`cell`; ``document`` (any JSON-able value) is shown
    indented, non-finite numbers as ``null``. A document's ``data_interval`` (the data the report
    judged) heads the summary.
    """
    return render(
        "page.html.j2",
        title=title,
        status=status,
        badge_kind=BADGES.get(status, "info"),
        summary=list(_with_interval(summary, document).items()),
        tables=[
            {
                "caption": caption,
                "header": list(header),
                "rows": [
                    {"cells": list(row), "cls": classes[i] if i < len(classes) else ""}
                    for i, row in enumerate(rows)
                ],
            }
            for caption, header, rows, classes in tables
        ],
        document=document,
    )


def validation_html(doc: dict[str, Any], title: str) -> str:
    """The validation result: status, snapshot and counts, one row per expectation (failures marked)."""
    rows, classes = [], []
    for r in doc["results"]:
        rows.append(
            [
                ("ok" if r["success"] else "FAIL"),
                r["severity"],
                r["origin"],
                r["type"],
                r["column"],
                checked_text((r.get("details") or {}).get("kwargs")),
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
        _with_interval(summary, doc),
        [
            (
                "Expectations",
                ["result", "severity", "origin", "expectation", "column", "checked", "detail"],
                rows,
                classes,
            )
        ],
    )


#: The arguments of an expectation that say what it checked (bounds, value sets, types, patterns).
_CHECKED_ARGS = (
    "min_value",
    "max_value",
    "strict_min",
    "strict_max",
    "value_set",
    "type_",
    "type_list",
    "regex",
    "mostly",
    "column_list",
    "column_set",
)


#: bounds of the schema's "no infinite values" check of a numeric feature (validation.py)
FINITE_BOUND = 1e300
#: ``mostly`` of the "not empty in every row" check of a feature: one value in a billion rows passes
SOME_VALUE = 1e-9


def checked_text(kwargs: Mapping[str, Any] | None) -> str:
    """What an expectation checked, from its arguments: ``between 0 and 600``, ``in {a, b}``, ...

    ``kwargs`` are the expectation's Great Expectations arguments; the column itself is left out.
    An empty string when there is nothing beyond the column.
    """
    kwargs = kwargs or {}
    parts = []
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    if (low, high) == (-FINITE_BOUND, FINITE_BOUND):  # the schema's check, not a range anyone set
        parts.append("finite: no infinite values")
    elif low is not None or high is not None:
        lo_op = ">" if kwargs.get("strict_min") else ">="
        hi_op = "<" if kwargs.get("strict_max") else "<="
        bounds = [
            f"{lo_op} {cell(low)}" if low is not None else "",
            f"{hi_op} {cell(high)}" if high is not None else "",
        ]
        parts.append(" and ".join(b for b in bounds if b))
    if kwargs.get("value_set") is not None:
        values = list(kwargs["value_set"])
        shown = ", ".join(cell(v) for v in values[:50])
        parts.append(f"in {{{shown}{', ...' if len(values) > 50 else ''}}} ({len(values)} values)")
    for key in ("type_", "type_list", "regex", "column_list", "column_set"):
        if kwargs.get(key) is not None:
            parts.append(f"{key.rstrip('_')} {cell(kwargs[key])}")
    if kwargs.get("mostly") == SOME_VALUE:
        parts.append("not empty in every row")
    elif kwargs.get("mostly") is not None:
        parts.append(f"for at least {cell(kwargs['mostly'])} of rows")
    rest = {
        k: v for k, v in kwargs.items() if k not in _CHECKED_ARGS and k not in ("column", "result_format")
    }
    parts += [f"{k} {cell(v)}" for k, v in sorted(rest.items())]
    return "; ".join(parts)


# --------------------------------------------------------------------------- the gate decision


def decision_html(doc: dict[str, Any], title: str) -> str:
    """The gate decision: summary, rules with verdict badges, the bootstrap interval (numbers and an
    inline SVG plot against the margin), slices, metrics, permutation importance, the raw JSON."""
    rules = doc.get("rules") or []
    counts = {v: sum(r.get("verdict") == v for r in rules) for v in ("pass", "fail", "skip")}
    status = doc.get("status", "")
    summary = {
        "challenger version": doc.get("challenger_version"),
        "champion at evaluation": doc.get("baseline_version") or "none (no baseline)",
        "primary metric": doc.get("primary_metric"),
        "holdout rows": doc.get("holdout_rows"),
        "snapshot": doc.get("snapshot_sha256"),
        "rules": f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped (not gated)",
    }
    summary = _with_interval(summary, doc)
    primary = doc.get("primary_metric") or ""
    new, old = doc.get("challenger_metrics") or {}, doc.get("champion_metrics") or {}
    return render(
        "decision.html.j2",
        title=title,
        status=status,
        badge_kind=BADGES.get(str(status), "info"),
        summary=list(summary.items()),
        reasons=[str(r) for r in doc.get("reasons") or []],
        rules=[
            {
                "verdict": str(r.get("verdict")),
                "badge": _VERDICT_BADGES.get(str(r.get("verdict")), "info"),
                "cls": _ROW_CLASS.get(str(r.get("verdict")), ""),
                "cells": [r.get(k) for k in ("rule", "metric", "slice", "observed", "threshold", "message")],
            }
            for r in rules
        ],
        bootstrap=_bootstrap_view(doc.get("bootstrap")),
        primary=primary,
        slices=[_slice_view(s, primary) for s in doc.get("slices") or []],
        metrics=[(m, new.get(m), old.get(m)) for m in sorted(set(new) | set(old))],
        importance=_importance_view(doc.get("importance")),
        document=doc,
    )


def _number(value: Any, spec: str = "+.4f") -> str:
    return format(value, spec) if isinstance(value, int | float) and not isinstance(value, bool) else "n/a"


def _bootstrap_view(boot: dict[str, Any] | None) -> dict[str, Any] | None:
    if not boot:
        return None
    status = str(boot.get("status"))
    view: dict[str, Any] = {
        "status": status,
        "badge": _VERDICT_BADGES.get(status, "info"),
        "message": str(boot.get("message") or ""),
        "rows": [],
    }
    if status not in ("pass", "fail") or boot.get("lower") is None or boot.get("upper") is None:
        return view
    require = str(boot.get("require", "")).replace("_", "-")
    view["rows"] = [
        (
            "metric",
            f"{boot.get('metric')} ({'higher' if boot.get('higher_is_better') else 'lower'} is better)",
        ),
        (
            "challenger / champion",
            f"{_number(boot.get('challenger'), '.4f')} / {_number(boot.get('champion'), '.4f')}",
        ),
        ("difference (positive = challenger better)", _number(boot.get("estimate"))),
        (
            f"{_number(boot.get('confidence'), '.0%')} confidence interval",
            f"[{_number(boot.get('lower'))}, {_number(boot.get('upper'))}]",
        ),
        (
            "requirement",
            f"{require}: lower bound > {_number(boot.get('threshold'), '+.4g')} "
            f"(margin {_number(boot.get('margin'), '.4g')})",
        ),
        (
            "resamples",
            f"{boot.get('valid_resamples')} of {boot.get('resamples')} valid, "
            f"{boot.get('rows')} rows, seed {boot.get('seed')}, {boot.get('method')} interval",
        ),
    ]
    view["svg"] = interval_geometry(
        boot["lower"], boot["upper"], boot.get("estimate"), boot.get("threshold"), status
    )
    return view


def interval_geometry(
    lower: float, upper: float, estimate: float | None, threshold: float | None, status: str
) -> dict[str, Any]:
    """Where the marks of the interval plot go: a 480 px number line through zero, the threshold
    and the interval [lower, upper] with its point estimate, padded by 12 % of the span."""

    est = estimate if isinstance(estimate, int | float) else None
    thr = threshold if isinstance(threshold, int | float) else None
    marks = [v for v in (lower, upper, est, thr, 0.0) if v is not None]
    lo, hi = min(marks), max(marks)
    pad = (hi - lo) * 0.12 or 0.01
    lo, hi = lo - pad, hi + pad
    width, left, right = 480, 20, 460

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * (right - left)

    return {
        "width": width,
        "left": left,
        "right": right,
        "lower": lower,
        "upper": upper,
        "estimate": est,
        "threshold": thr,
        "x_zero": x(0.0),
        "x_lower": x(lower),
        "x_upper": x(upper),
        "x_estimate": None if est is None else x(est),
        "x_threshold": None if thr is None else x(thr),
        "color": "#1a7f37" if status == "pass" else "#cf222e",
    }


def _slice_view(s: dict[str, Any], primary: str) -> dict[str, Any]:
    status = str(s.get("status"))
    return {
        "cls": "skip" if status == "skipped" else "",
        "slice": s.get("slice"),
        "rows": s.get("rows"),
        "status": status,
        "new": (s.get("challenger_metrics") or {}).get(primary),
        "old": (s.get("champion_metrics") or {}).get(primary),
        "note": s.get("note"),
    }


def _importance_view(importance: dict[str, Any] | None) -> dict[str, Any] | None:
    if not importance:
        return None
    view: dict[str, Any] = {
        "metric": str(importance.get("metric")),
        "error": str(importance["error"]) if importance.get("error") else None,
        "rows": importance.get("rows"),
        "n_repeats": importance.get("n_repeats"),
        "baseline": importance.get("baseline"),
        "features": [],
    }
    features = importance.get("features") or []
    top = max([abs(f.get("importance") or 0.0) for f in features] + [1e-12])
    for f in features:
        value = f.get("importance")
        view["features"].append(
            {
                "feature": f.get("feature"),
                "importance": value,
                "std": f.get("std"),
                "negative": (value or 0.0) < 0,
                "width": abs(value or 0.0) / top * 100 * 2,
            }
        )
    return view
