"""The plugin's page model, its storage reads and the Report link's URL (mlops_ops/ui, links.py).
The plugin over HTTP, behind Airflow's login, is tested in tests/browser/test_ui.py."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from mlops_ops.links import report_url
from mlops_ops.ui import store
from mlops_ops.ui.history import EventKind, ReportKind, ReportRef, StoredReport, build_history, layout_chart
from mlops_ops.ui.render import render_pipeline

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def _gate(version, promote, reasons=()):
    return {
        "promote": promote,
        "challenger_version": version,
        "baseline_version": None,
        "status": "pass" if promote else "fail",
        "reasons": list(reasons),
    }


def _drift(effects):
    return {
        "drifted_share": 0.0,
        "columns": [
            {"name": name, "effect": effect, "effect_threshold": 0.1, "drifted": effect > 0.1}
            for name, effect in effects.items()
        ],
    }


def _record(seq, version, action="promote", at=T0, previous=None):
    return {
        "seq": seq,
        "version": version,
        "previous_version": previous,
        "action": action,
        "deployed_at": at.isoformat(),
        "evidence_uri": f"s3://b/root/churn/reports/churn_training/run{seq}/evaluate.json",
        "decision": {"reasons": ["all rules passed"]},
        "airflow.dag_id": "churn_training",
        "airflow.run_id": f"run{seq}",
    }


def _report(day, doc, dag="churn_monitoring", task="detect_drift"):
    return StoredReport(ReportRef(dag, f"run{day}", task), doc, T0 + dt.timedelta(days=day))


def test_report_kinds_are_read_from_the_document():
    assert ReportKind.of(_gate("1", True)) is ReportKind.GATE
    assert ReportKind.of(_drift({"a": 0.2})) is ReportKind.DRIFT
    assert (
        ReportKind.of({"metric": "roc_auc", "tolerance": 0.02, "baseline": 0.8, "value": 0.7})
        is ReportKind.PERFORMANCE
    )
    assert ReportKind.of({"status": "passed"}) is ReportKind.OTHER


def test_history_orders_the_ledger_by_sequence_and_lists_rejections():
    # the rollback's file time is earlier than v2's promotion (worker clocks): seq decides the head
    ledger = [
        _record(1, "1", at=T0),
        _record(2, "2", at=T0 + dt.timedelta(days=2), previous="1"),
        _record(3, "1", action="rollback", at=T0 + dt.timedelta(days=1), previous="2"),
    ]
    reports = [
        _report(0, _gate("1", True), "churn_training", "evaluate"),
        _report(3, _gate("3", False, ["roc_auc 0.61 < 0.70"]), "churn_training", "evaluate"),
    ]
    h = build_history("churn", reports=reports, ledger=ledger, retrain_requests=[])
    assert h.champion == "1"
    kinds = [(e.kind, e.version) for e in h.timeline]
    assert (EventKind.REJECTION, "3") in kinds
    assert (EventKind.ROLLBACK, "1") in kinds
    assert [e.kind for e in h.timeline].count(EventKind.PROMOTION) == 2
    rejection = next(e for e in h.timeline if e.kind is EventKind.REJECTION)
    assert rejection.summary == "roc_auc 0.61 < 0.70"
    assert rejection.evidence == ReportRef("churn_training", "run3", "evaluate")
    promotion = next(e for e in h.timeline if e.kind is EventKind.PROMOTION and e.version == "2")
    assert promotion.evidence == ReportRef("churn_training", "run2", "evaluate")
    assert [(v.version, v.champion) for v in h.versions] == [("3", False), ("2", False), ("1", True)]


def test_rejection_is_dated_when_decided_not_by_its_data_and_names_the_airflow_run():
    # the demo: v1, v2 promoted today; v3, trained on data ending in March, rejected between v2 and
    # the rollback. Its place in the timeline is when the gate decided, as for the ledger's events.
    now = dt.datetime(2026, 12, 5, 14, tzinfo=dt.UTC)
    ledger = [
        _record(1, "1", at=now),
        _record(2, "2", at=now + dt.timedelta(minutes=2), previous="1"),
        _record(3, "1", action="rollback", at=now + dt.timedelta(minutes=6), previous="2"),
    ]
    gate = {**_gate("3", False, ["too weak"]), "airflow.run_id": "manual__2026-12-05T14:04:00+00:00"}
    ref = ReportRef("churn_training", "manual__2026-12-05T14_04_00_00_00", "evaluate")
    rejection = StoredReport(ref, gate, dt.datetime(2026, 3, 5, tzinfo=dt.UTC), now + dt.timedelta(minutes=4))
    h = build_history("churn", reports=[rejection], ledger=ledger, retrain_requests=[])
    assert [(e.kind, e.version) for e in h.timeline] == [
        (EventKind.ROLLBACK, "1"),
        (EventKind.REJECTION, "3"),
        (EventKind.PROMOTION, "2"),
        (EventKind.PROMOTION, "1"),
    ]
    assert h.timeline[1].run == "churn_training / manual__2026-12-05T14:04:00+00:00"


def test_drift_and_performance_series_are_in_time_order():
    reports = [
        _report(2, _drift({"tenure": 0.3, "region": 0.01})),
        _report(1, _drift({"tenure": 0.05, "region": float("nan")})),
        _report(
            1,
            {"metric": "roc_auc", "tolerance": 0.02, "baseline": 0.8, "value": 0.79, "status": "ok"},
            task="perf",
        ),
        _report(
            2,
            {"metric": "roc_auc", "tolerance": 0.02, "baseline": 0.8, "value": 0.7, "status": "degraded"},
            task="perf",
        ),
    ]
    h = build_history("churn", reports=reports, ledger=[], retrain_requests=[])
    assert [(p.value, p.flagged) for p in h.drift["tenure"]] == [(0.05, False), (0.3, True)]
    assert [p.value for p in h.drift["region"]] == [0.01]  # a non-finite effect is not drawn
    assert [(p.value, p.flagged) for p in h.performance] == [(0.79, False), (0.7, True)]
    assert (h.performance_metric, h.performance_baseline, h.champion) == ("roc_auc", 0.8, None)


def test_chart_keeps_points_and_threshold_inside_the_plot():
    h = build_history(
        "churn",
        reports=[_report(d, _drift({"a": 0.02 * d})) for d in range(5)],
        ledger=[],
        retrain_requests=[],
    )
    chart = layout_chart("a", h.drift["a"], threshold=0.1)
    ys = [m.y for m in chart.marks] + [chart.threshold_y]
    assert all(0 <= y <= chart.height for y in ys)
    assert [m.x for m in chart.marks] == sorted(m.x for m in chart.marks)
    assert chart.marks[0].y > chart.marks[-1].y  # larger values are drawn higher


def test_page_escapes_names_from_data():
    doc = _drift({"<script>alert(1)</script>": 0.5})
    h = build_history(
        "churn", reports=[_report(1, doc)], ledger=[], retrain_requests=[{"reason": "<b>x</b>"}]
    )
    html = render_pipeline(h, {"mlops": "/mlops", "airflow": ""})
    assert "<script>alert" not in html
    assert "&lt;script&gt;" in html
    assert "<b>x</b>" not in html


def test_retrain_requests_say_what_the_checks_found_in_words():
    # a request as RequestRetrainOperator stores it (the demo's of 2026-03-03)
    request = {
        "reason": "data drift in 3 column(s): monthly_charges, support_calls, contract",
        "requested_at": "2026-03-03T00:00:00+00:00",
        "summary": {
            "drift": {
                "drifted_columns": ["a", "b", "c"],
                "drifted_share": 3 / 7,
                "prediction_drift": True,
                "rows": 300,
                "status": "drift",
            },
            "performance": {"baseline": 0.7771, "metric": "roc_auc", "status": "ok", "value": 0.7432},
        },
    }
    h = build_history("churn", reports=[], ledger=[], retrain_requests=[request, {"reason": "manual"}])
    html = render_pipeline(h, {"mlops": "/mlops", "airflow": ""})
    found = (
        "drift: drift, 3 of 7 columns, predictions drifted, 300 rows; roc_auc 0.743 vs 0.777 at promotion: ok"
    )
    assert found in html
    assert "{&#39;drift&#39;" not in html  # no Python dict on the page
    assert "drifted_share" not in html


@pytest.mark.parametrize(
    ("uri", "base", "expected"),
    [
        (
            "file:///h/storage/churn/reports/churn_training/manual__2026-12-05T10_00_00_00_00/evaluate.json",
            "",
            "/mlops/reports/churn/churn_training/manual__2026-12-05T10_00_00_00_00/evaluate.html",
        ),
        (
            "s3://bucket/ml/churn/reports/churn_training/r1/validate.json",
            "https://airflow.example.com/af/",
            "/af/mlops/reports/churn/churn_training/r1/validate.html",
        ),
        ("s3://bucket/ml/churn/snapshots/abc/manifest.json", "", ""),
        ("", "", ""),
    ],
)
def test_report_link_points_at_the_plugin(uri, base, expected):
    assert report_url(uri, base) == expected


@pytest.mark.parametrize(
    "parts",
    [
        ("..", "d", "r", "t.html"),
        ("churn", "..", "r", "t.html"),
        ("churn", "d", "a/b", "t.html"),
        ("churn", "d", "r", "../t.html"),
        ("churn", "d", "r", "..html"),
        ("churn", "d", "r", ".hidden.json"),
        ("churn", "d", "r", "t.py"),
        ("churn", "d", "r", "t"),
        ("", "d", "r", "t.html"),
    ],
)
def test_report_paths_are_single_safe_segments(parts, tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_STORAGE", f"file://{tmp_path}")
    with pytest.raises(store.UnsafeNameError):
        store.report_path(*parts)


def test_read_history_from_storage_names_unreadable_documents(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_STORAGE", f"file://{tmp_path}")
    run = tmp_path / "churn" / "reports" / "churn_training" / "r1"
    run.mkdir(parents=True)
    (run / "evaluate.json").write_text(json.dumps(_gate("1", False, ["too weak"])))
    (run / "evaluate.html").write_text("<html></html>")
    (run / "validate.json").write_text("{not json")
    (run / "train.json.tmp-abc").write_text("{")
    deployments = tmp_path / "churn" / "deployments"
    (deployments / "claims").mkdir(parents=True)
    (deployments / "20261101T000000.000000Z-v1.json").write_text(json.dumps(_record(1, "1")))
    (tmp_path / "other" / "snapshots").mkdir(parents=True)  # no reports, no ledger: not a pipeline page

    assert store.list_pipelines() == ["churn"]
    h = store.read_history("churn")
    assert h.champion == "1"
    rejections = [e for e in h.timeline if e.kind is EventKind.REJECTION]
    assert len(rejections) == 1
    # no data interval stated: dated by the file, the same time for the chart and the timeline
    assert rejections[0].at == dt.datetime.fromtimestamp((run / "evaluate.json").stat().st_mtime, dt.UTC)
    assert len(h.problems) == 1
    assert "validate.json" in h.problems[0]
    assert store.report_path("churn", "churn_training", "r1", "evaluate.html").read_text() == "<html></html>"


def test_a_release_and_its_withdrawal_are_on_the_timeline_once_each():
    """A canary's steps from the release ledger: released beside the champion, then withdrawn by
    the judge (the champion never moved); a promotion by the release is a champion ledger record
    already, so the release ledger's own ``promote`` record is not shown twice."""
    judge = "file:///s/churn/reports/churn_release/run9/judge.json"
    releases = [
        {"seq": 1, "action": "release", "version": "5", "champion_version": "4", "strategy": "canary",
         "at": (T0 + dt.timedelta(hours=1)).isoformat(), "airflow.dag_id": "churn_training",
         "airflow.run_id": "run8"},
        {"seq": 2, "action": "rollback", "version": "5", "champion_version": "4",
         "reasons": ["prediction_drift breached: effect 1.03 vs guardrail 0.1"], "report_uri": judge,
         "at": (T0 + dt.timedelta(hours=2)).isoformat(), "airflow.dag_id": "churn_release",
         "airflow.run_id": "run9"},
        {"seq": 3, "action": "promote", "version": "4", "champion_version": "4",
         "at": (T0 + dt.timedelta(hours=3)).isoformat()},
    ]  # fmt: skip
    h = build_history(
        "churn", reports=[], ledger=[_record(1, "4", at=T0)], retrain_requests=[], releases=releases
    )
    assert [(e.kind, e.version) for e in h.timeline] == [
        (EventKind.WITHDRAWN, "5"),
        (EventKind.RELEASE, "5"),
        (EventKind.PROMOTION, "4"),
    ]
    withdrawn = h.timeline[0]
    assert "prediction_drift breached" in withdrawn.summary
    assert withdrawn.evidence == ReportRef("churn_release", "run9", "judge")
    assert "canary" in h.timeline[1].summary
    assert "v4" in h.timeline[1].summary
    assert h.champion == "4"
    page = render_pipeline(h, {"mlops": "/mlops", "airflow": ""})
    assert 'class="badge withdrawn"' in page
    assert 'class="badge release"' in page
