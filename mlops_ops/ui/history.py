"""The pipeline page's data: a pipeline's stored documents turned into a timeline and series.

Pure functions over the documents read from storage (gate, drift and performance reports, ledger
records, retrain requests); no Airflow, no I/O, so the page's logic is unit-tested without a
server. The reader is :mod:`mlops_ops.ui.store`, the view ``templates/pipeline.html.j2``.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_REPORTS = "reports"


class ReportKind(enum.StrEnum):
    """What a stored report is, read from its fields (task ids are the DAG author's choice)."""

    GATE = "gate"
    DRIFT = "drift"
    PERFORMANCE = "performance"
    OTHER = "other"

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> ReportKind:
        if "promote" in doc and "challenger_version" in doc:
            return cls.GATE
        if "drifted_share" in doc and isinstance(doc.get("columns"), list):
            return cls.DRIFT
        if "metric" in doc and "tolerance" in doc and "baseline" in doc:
            return cls.PERFORMANCE
        return cls.OTHER


class EventKind(enum.StrEnum):
    """A timeline entry: a promotion or rollback (champion ledger records), a gate rejection, or
    a progressive release's steps that leave the champion alone (release ledger records): a
    challenger released, or a challenger withdrawn (rolled back) by the release judge."""

    PROMOTION = "promotion"
    ROLLBACK = "rollback"
    REJECTION = "rejection"
    RELEASE = "release"
    WITHDRAWN = "withdrawn"


@dataclass(frozen=True)
class ReportRef:
    """Where a report is stored: ``reports/<dag_id>/<run_id>/<task_id>.json`` of one pipeline."""

    dag_id: str
    run_id: str
    task_id: str

    @classmethod
    def from_uri(cls, uri: str | None) -> ReportRef | None:
        """The report named by a storage URI (a ledger record's ``evidence_uri``), or None."""
        if not uri:
            return None
        parts = uri.rstrip("/").split("/")
        if len(parts) < 4 or parts[-4] != _REPORTS or not parts[-1].endswith((".json", ".html")):
            return None
        return cls(parts[-3], parts[-2], parts[-1].rsplit(".", 1)[0])


@dataclass(frozen=True)
class StoredReport:
    """One report's JSON document and where it is. ``written_at`` (UTC) is the time of the data
    it judged (the end of its data interval), for the charts; ``stored_at`` is when the file was
    written, the time of the decision itself, for the timeline (None: unknown, ``written_at``)."""

    ref: ReportRef
    doc: Mapping[str, Any]
    written_at: dt.datetime
    stored_at: dt.datetime | None = None

    @property
    def kind(self) -> ReportKind:
        return ReportKind.of(self.doc)


@dataclass(frozen=True)
class TimelineEvent:
    """One entry of the deployment timeline, newest first on the page."""

    kind: EventKind
    at: dt.datetime
    version: str
    previous_version: str | None
    summary: str
    evidence: ReportRef | None
    run: str


@dataclass(frozen=True)
class VersionRow:
    """A model version the pipeline's documents mention, with what happened to it."""

    version: str
    gate: str
    promoted_at: dt.datetime | None
    champion: bool


@dataclass(frozen=True)
class Point:
    """A value of a series at a time; ``flagged`` marks drift or degradation."""

    at: dt.datetime
    value: float
    flagged: bool
    report: ReportRef


@dataclass
class PipelineHistory:
    """Everything the pipeline page shows.

    ``drift`` maps a column to its effect-size series (the drift test's effect, unitless);
    ``performance`` is the monitored metric's series and ``baselines`` the promotion values.
    """

    pipeline: str
    champion: str | None
    versions: list[VersionRow]
    timeline: list[TimelineEvent]
    drift: dict[str, list[Point]]
    drift_thresholds: dict[str, float]
    performance: list[Point]
    performance_metric: str | None
    performance_baseline: float | None
    retrain_requests: list[Mapping[str, Any]]
    problems: list[str] = field(default_factory=list)


def parse_time(value: Any) -> dt.datetime | None:
    """An ISO-8601 time as an aware UTC datetime (naive values are taken as UTC), else None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def build_history(
    pipeline: str,
    *,
    reports: Iterable[StoredReport],
    ledger: Iterable[Mapping[str, Any]],
    retrain_requests: Iterable[Mapping[str, Any]],
    releases: Iterable[Mapping[str, Any]] = (),
    problems: Sequence[str] = (),
) -> PipelineHistory:
    """The page model of one pipeline.

    :param reports: every stored report document (any order).
    :param ledger: the ledger records (any order); the one with the highest ``seq`` is the head,
        whose version is the champion (docs/architecture.md, "Deployment ledger and claims").
    :param retrain_requests: the ``retrain_requests/*.json`` records.
    :param releases: the release ledger's records (``deployments/releases/*.json``); its
        promotions and watch rollbacks are already champion ledger records, so only a
        challenger's release and its withdrawal are added to the timeline.
    :param problems: documents that could not be read, shown on the page rather than hidden.
    """
    reports = sorted(reports, key=lambda r: r.written_at)
    records = sorted(ledger, key=lambda d: (_int(d.get("seq")), str(d.get("deployed_at"))))
    champion = str(records[-1]["version"]) if records else None
    timeline = [_ledger_event(d) for d in records]
    timeline += [_release_event(d) for d in releases if d.get("action") in ("release", "rollback")]
    gate_of: dict[str, str] = {}
    for report in reports:
        if report.kind is ReportKind.GATE:
            version = str(report.doc.get("challenger_version"))
            gate_of[version] = str(report.doc.get("status", ""))
            if not report.doc.get("promote"):
                timeline.append(_rejection(report))
    promoted = {e.version: e.at for e in timeline if e.kind is EventKind.PROMOTION}
    mentioned = set(gate_of) | set(promoted) | {e.version for e in timeline}
    versions = [
        VersionRow(v, gate_of.get(v, ""), promoted.get(v), v == champion)
        for v in sorted(mentioned, key=_version_key, reverse=True)
    ]
    drift, thresholds = _drift_series(r for r in reports if r.kind is ReportKind.DRIFT)
    perf = [r for r in reports if r.kind is ReportKind.PERFORMANCE]
    performance = [
        Point(r.written_at, float(r.doc["value"]), r.doc.get("status") == "degraded", r.ref)
        for r in perf
        if _finite(r.doc.get("value"))
    ]
    return PipelineHistory(
        pipeline=pipeline,
        champion=champion,
        versions=versions,
        timeline=sorted(timeline, key=lambda e: e.at, reverse=True),
        drift=drift,
        drift_thresholds=thresholds,
        performance=performance,
        performance_metric=str(perf[-1].doc.get("metric")) if perf else None,
        performance_baseline=float(perf[-1].doc["baseline"])
        if perf and _finite(perf[-1].doc.get("baseline"))
        else None,
        retrain_requests=sorted(retrain_requests, key=lambda d: str(d.get("requested_at")), reverse=True),
        problems=list(problems),
    )


def retrain_checks(request: Mapping[str, Any]) -> str:
    """What the monitoring checks behind a retrain request found, in words, from its ``summary``
    (``{"drift": {...}, "performance": {...}}``, both optional): e.g. "drift: drift, 3 of 7
    columns, 300 rows; roc_auc 0.743 vs 0.777 at promotion: ok". Empty when there is no summary."""
    summary = request.get("summary")
    if not isinstance(summary, Mapping):
        return ""
    parts = []
    drift = summary.get("drift")
    if isinstance(drift, Mapping):
        text = f"drift: {drift.get('status', '?')}"
        columns, share = drift.get("drifted_columns"), drift.get("drifted_share")
        if isinstance(columns, list) and isinstance(share, int | float) and _finite(share) and share > 0:
            text += f", {len(columns)} of {round(len(columns) / share)} columns"
        if drift.get("prediction_drift"):
            text += ", predictions drifted"
        if _finite(drift.get("rows")):
            text += f", {int(drift['rows'])} rows"
        parts.append(text)
    perf = summary.get("performance")
    if isinstance(perf, Mapping):
        value, baseline = perf.get("value"), perf.get("baseline")
        shown = f"{value:.3f}" if _finite(value) else "not computed"
        at_promotion = f" vs {baseline:.3f} at promotion" if _finite(baseline) else ""
        parts.append(f"{perf.get('metric', 'performance')} {shown}{at_promotion}: {perf.get('status', '?')}")
    return "; ".join(parts)


def _ledger_event(doc: Mapping[str, Any]) -> TimelineEvent:
    action = EventKind.ROLLBACK if doc.get("action") == "rollback" else EventKind.PROMOTION
    decision = doc.get("decision") if isinstance(doc.get("decision"), Mapping) else {}
    reasons = decision.get("reasons") if isinstance(decision, Mapping) else None
    summary = str(doc.get("reason") or "") or "; ".join(str(r) for r in reasons or [])
    return TimelineEvent(
        kind=action,
        at=parse_time(doc.get("deployed_at")) or dt.datetime.min.replace(tzinfo=dt.UTC),
        version=str(doc.get("version")),
        previous_version=None if doc.get("previous_version") is None else str(doc["previous_version"]),
        summary=summary,
        evidence=ReportRef.from_uri(doc.get("evidence_uri")),
        run=f"{doc.get('airflow.dag_id')} / {doc.get('airflow.run_id')}",
    )


def _release_event(doc: Mapping[str, Any]) -> TimelineEvent:
    released = doc.get("action") == "release"
    decision = doc.get("decision") if isinstance(doc.get("decision"), Mapping) else {}
    reasons = doc.get("reasons") or (decision.get("reasons") if isinstance(decision, Mapping) else None)
    summary = "; ".join(str(r) for r in reasons or [])
    if released:
        summary = (
            f"challenger ({doc.get('strategy') or 'release'}) beside champion v{doc.get('champion_version')}"
            + (f": {summary}" if summary else "")
        )
    return TimelineEvent(
        kind=EventKind.RELEASE if released else EventKind.WITHDRAWN,
        at=parse_time(doc.get("at")) or dt.datetime.min.replace(tzinfo=dt.UTC),
        version=str(doc.get("version")),
        previous_version=None if doc.get("champion_version") is None else str(doc["champion_version"]),
        summary=summary,
        evidence=ReportRef.from_uri(doc.get("report_uri") or doc.get("evidence_uri")),
        run=f"{doc.get('airflow.dag_id')} / {doc.get('airflow.run_id')}",
    )


def _rejection(report: StoredReport) -> TimelineEvent:
    doc = report.doc
    baseline = doc.get("baseline_version")
    return TimelineEvent(
        kind=EventKind.REJECTION,
        # the ledger's events are dated when they happened: so is a rejection, not by its data
        at=report.stored_at or report.written_at,
        version=str(doc.get("challenger_version")),
        previous_version=None if baseline is None else str(baseline),
        summary="; ".join(str(r) for r in doc.get("reasons") or []),
        evidence=report.ref,
        # the run id as Airflow has it; the storage folder's name has ':' and '+' replaced
        run=f"{report.ref.dag_id} / {doc.get('airflow.run_id') or report.ref.run_id}",
    )


def _drift_series(reports: Iterable[StoredReport]) -> tuple[dict[str, list[Point]], dict[str, float]]:
    series: dict[str, list[Point]] = {}
    thresholds: dict[str, float] = {}
    for report in reports:
        for column in report.doc.get("columns") or []:
            if not isinstance(column, Mapping) or not _finite(column.get("effect")):
                continue
            name = str(column.get("name"))
            series.setdefault(name, []).append(
                Point(report.written_at, float(column["effect"]), bool(column.get("drifted")), report.ref)
            )
            if _finite(column.get("effect_threshold")):
                thresholds[name] = float(column["effect_threshold"])
    return dict(sorted(series.items())), thresholds


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (-1, version)


# -- charts ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChartMark:
    """A point drawn on a chart, in SVG coordinates."""

    x: float
    y: float
    point: Point


@dataclass(frozen=True)
class Chart:
    """A line chart laid out for ``templates/chart.svg.j2`` (SVG user units; y grows downwards).

    ``threshold_y`` is the drawn threshold (drift effect threshold, promotion baseline), if any.
    """

    title: str
    width: int
    height: int
    marks: list[ChartMark]
    y_ticks: list[tuple[float, str]]
    x_labels: list[tuple[float, str]]
    threshold_y: float | None
    threshold_label: str

    @property
    def polyline(self) -> str:
        return " ".join(f"{m.x:.1f},{m.y:.1f}" for m in self.marks)


_PAD_LEFT, _PAD_RIGHT, _PAD_TOP, _PAD_BOTTOM = 56, 16, 12, 28


def layout_chart(
    title: str,
    points: Sequence[Point],
    *,
    threshold: float | None = None,
    threshold_label: str = "",
    width: int = 520,
    height: int = 180,
) -> Chart:
    """Scale ``points`` (in time order) onto a ``width`` x ``height`` chart, the threshold included
    in the value range. Points are spaced evenly by order, labelled with their dates."""
    values = [p.value for p in points] + ([threshold] if threshold is not None else [])
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high - low < 1e-12:
        low, high = low - 0.5, high + 0.5
    span = high - low
    low, high = low - 0.05 * span, high + 0.05 * span
    inner_w = width - _PAD_LEFT - _PAD_RIGHT
    inner_h = height - _PAD_TOP - _PAD_BOTTOM

    def y_of(value: float) -> float:
        return _PAD_TOP + inner_h * (high - value) / (high - low)

    step = inner_w / max(len(points) - 1, 1)
    marks = [
        ChartMark(_PAD_LEFT + (i * step if len(points) > 1 else inner_w / 2), y_of(p.value), p)
        for i, p in enumerate(points)
    ]
    ticks = [(y_of(low + (high - low) * k / 4), f"{low + (high - low) * k / 4:.3g}") for k in range(5)]
    every = max(1, math.ceil(len(marks) / 6))
    labels = [(m.x, m.point.at.strftime("%m-%d %H:%M")) for m in marks[::every]]
    return Chart(
        title=title,
        width=width,
        height=height,
        marks=marks,
        y_ticks=ticks,
        x_labels=labels,
        threshold_y=None if threshold is None else y_of(threshold),
        threshold_label=threshold_label,
    )
