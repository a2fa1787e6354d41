"""The HTML view of a drift report: one self-contained page from ``templates/drift.html.j2``.

A header with the verdict, batch and reference sizes, the data interval judged and the thresholds,
the reference used (when the report names one) and the reasons; then one table row per column, the
columns furthest past their effect threshold first, each with a small plot of reference vs current
shares on the reference bins (or categories). A prediction-drift report in the document follows as
a second section of the same page.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlops_ops.core.drift.statistics import ColumnDrift
from mlops_ops.core.drift.verdict import DriftReport
from mlops_ops.core.reports import interval_text, render

_REF = "#8c959f"
_CUR = "#0969da"
_WIDTH = 260
_HEIGHT = 64


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


def shares_plot(col: ColumnDrift) -> dict[str, Any]:
    """Bar geometry of the shares plot: per slot a tooltip and two bars (reference, current), in px."""
    slots = _slots(col)
    top = max([max(r, c) for _, r, c in slots] + [1e-12])
    slot_w = _WIDTH / len(slots) if slots else 0.0
    bar_w = max(slot_w / 2 - 0.5, 0.5)
    out = []
    for i, (label, r, c) in enumerate(slots):
        bars = []
        for offset, share, colour in ((0.0, r, _REF), (bar_w, c, _CUR)):
            height = (_HEIGHT - 2) * share / top
            bars.append(
                {"x": i * slot_w + offset, "y": _HEIGHT - 1 - height, "height": height, "colour": colour}
            )
        out.append({"tip": f"{label}: reference {r:.1%}, current {c:.1%}", "bars": bars})
    return {"name": col.name, "width": _WIDTH, "height": _HEIGHT, "bar_width": bar_w, "slots": out}


def _column_view(col: ColumnDrift) -> dict[str, Any]:
    m = col.missing
    notes = []
    if col.note:
        notes.append(col.note)
    if col.unseen_share:
        notes.append(f"{col.unseen_share:.1%} in categories the reference does not name")
    if m.drifted:
        notes.append("missing rate drifted")
    return {
        "name": col.name,
        "kind": col.kind,
        "test": col.test,
        "drifted": col.drifted,
        "notes": notes,
        "statistic": col.statistic,
        "p_value": col.p_value,
        "p_adjusted": col.p_adjusted,
        "effect": col.effect,
        "effect_threshold": col.effect_threshold,
        "psi": col.psi,
        "missing_reference": m.reference_rate,
        "missing_current": m.current_rate,
        "missing_tested": m.tested,
        "missing_p_adjusted": m.p_adjusted,
        "plot": shares_plot(col),
    }


def _reference_view(reference: Any) -> list[tuple[str, Any]]:
    """The reference a report was judged against, as (term, value) pairs; [] when not stated."""
    if not reference:
        return []
    if not isinstance(reference, Mapping):
        return [("reference", reference)]
    out: list[tuple[str, Any]] = []
    for key, value in reference.items():
        if value is None or value == [] or value == {} or (key == "n_files" and not reference.get("files")):
            continue  # what this kind of reference does not have (a training reference has no files)
        term = str(key).replace("_", " ")
        if key == "intervals" and isinstance(value, list):
            value = "; ".join(str(interval_text(v)) for v in value)
        elif "interval" in str(key):
            value = interval_text(value)
        out.append((term, value))
    return out


def _rule(report: DriftReport) -> str:
    """The dataset rule that judged ``report``, with its threshold, as one line."""
    cfg, share = report.config, report.drifted_importance_share
    if cfg.rule == "share":
        return f"rule share: drift_share {cfg.drift_share:.1%}"
    if cfg.rule == "importance":
        held = f"{share:.1%} of the importance drifted; " if share is not None else ""
        return f"rule importance: {held}importance_share {cfg.importance_share:.1%}"
    return "rule any: one drifted column is a dataset drift"


def _report_view(
    report: DriftReport, doc: Mapping[str, Any], title: str, reference: str | None = None
) -> dict[str, Any]:
    cfg = report.config
    settings = [
        ("rows", f"{report.rows:,} (reference {report.reference_rows:,}; min_rows {cfg.min_rows:,})"),
    ]
    judged = interval_text(doc.get("data_interval"))
    if judged:
        settings.append(("data interval judged", judged))
    settings += [
        (
            "drifted columns",
            f"{len(report.drifted_columns)} of {len(report.columns)} "
            f"({report.drifted_share:.1%}; {_rule(report)})",
        ),
        (
            "significance",
            f"alpha {cfg.alpha:g} after {'Holm' if cfg.correction == 'holm' else 'Benjamini-Hochberg'} "
            f"correction over {report.family_size} tests",
        ),
        (
            "effect thresholds",
            f"numeric Wasserstein/std {cfg.delta:g}; categorical Jensen-Shannon "
            f"{cfg.categorical_delta:g}; missing rate change {cfg.missing_delta:g}",
        ),
        ("critical columns", ", ".join(cfg.critical_columns) or "none"),
    ]
    if reference:
        settings.append(("reference", reference))
    return {
        "title": title,
        "status": report.status,
        "status_label": report.status.replace("_", " "),
        "settings": settings,
        "reference": _reference_view(doc.get("reference")),
        "reasons": list(report.reasons),
        "columns": [_column_view(c) for c in sorted(report.columns, key=lambda c: -c.ratio)],
    }


def _as_report(report: DriftReport | Mapping[str, Any]) -> tuple[DriftReport, Mapping[str, Any]]:
    if isinstance(report, DriftReport):
        return report, report.to_dict()
    return DriftReport.from_dict(dict(report)), report


def render_drift_html(
    report: DriftReport | Mapping[str, Any], *, title: str, reference: str | None = None
) -> str:
    """One self-contained HTML page for a drift report; every user string is escaped.

    :param report: a :class:`DriftReport`, or the JSON document of one (``DriftReport.to_dict()``,
        possibly with more keys, as the monitoring task stores it). From the document the page also
        shows ``reference`` (which reference was used, its data interval and why), ``data_interval``
        (the batch's data interval judged) and ``prediction`` (a prediction-drift report, shown as
        a second section), each when present.
    :param reference: one line describing what the batch was compared with, shown beside the
        settings (the document's ``reference`` entry, when present, is shown in full as well).
    :raises ValueError: ``report`` is a document whose status is not a drift status.
    """
    main, doc = _as_report(report)
    prediction = None
    if isinstance(doc.get("prediction"), Mapping):
        pred, pred_doc = _as_report(doc["prediction"])
        prediction = _report_view(pred, pred_doc, "Prediction drift")
    return render(
        "drift.html.j2",
        title=title,
        main=_report_view(main, doc, title, reference),
        prediction=prediction,
        colours={"reference": _REF, "current": _CUR},
    )
