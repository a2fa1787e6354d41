"""The release ledger's rules and the judge task's small decisions (pure functions, no I/O)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from mlops_ops.core.registry import Claimant, LedgerError
from mlops_ops.core.registry.releases import (
    ReleaseAction,
    ReleasePhase,
    ReleaseState,
    bake_status,
    build_release_record,
    parse_release_record,
    release_record_name,
)
from mlops_ops.core.release import (
    ArmSummary,
    Guardrails,
    ReleaseJudgement,
    Verdict,
    approval_outcome,
    judge_release,
    override_verdict,
    plan_watch,
    release_document,
    release_html,
    watch_level,
)

T0 = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)
WHO = Claimant("churn_release", "manual__1", "conclude")


def record(seq: int, action: str, version: str = "2", champion: str | None = "1", at: dt.datetime = T0):
    doc = build_release_record(
        pipeline="churn",
        seq=seq,
        action=action,
        version=version,
        champion_version=champion,
        at=at,
        claimant=WHO,
    )
    return parse_release_record(release_record_name(seq), doc)


def test_records_round_trip_and_name_their_seq():
    rec = record(3, "promote")
    assert rec.name == "00000003.json"
    assert (rec.seq, rec.action, rec.version, rec.champion_version, rec.claimant) == (
        3,
        ReleaseAction.PROMOTE,
        "2",
        "1",
        WHO,
    )


@pytest.mark.parametrize(
    ("name", "doc"),
    [
        ("00000002.json", {"seq": 3, "action": "release", "version": "2", "at": T0.isoformat()}),
        ("3.json", {"seq": 3, "action": "release", "version": "2", "at": T0.isoformat()}),
        ("00000003.json", {"seq": 3, "action": "deploy", "version": "2", "at": T0.isoformat()}),
        ("00000003.json", {"seq": 3, "action": "release", "version": "2", "at": "2026-12-05T12:00:00"}),
        ("00000003.json", ["not", "a", "mapping"]),
    ],
)
def test_a_malformed_record_names_the_file(name, doc):
    with pytest.raises(LedgerError, match="release ledger record .* is malformed"):
        parse_release_record(name, doc)


def test_phases_follow_the_head():
    assert ReleaseState.build([]).phase(T0, 60) is ReleasePhase.IDLE
    baking = ReleaseState.build([record(1, "release")])
    assert baking.phase(T0, 60) is ReleasePhase.BAKING
    assert baking.open_release is not None
    watching = ReleaseState.build([record(2, "promote"), record(1, "release")])
    assert watching.phase(T0, 60) is ReleasePhase.WATCHING
    assert watching.watch_ends(60) == T0 + dt.timedelta(minutes=60)
    assert watching.release_of(watching.head).seq == 1
    assert watching.phase(T0, 0) is ReleasePhase.IDLE  # no watch configured
    closed = ReleaseState.build([record(1, "release"), record(2, "promote"), record(3, "watch_passed")])
    assert closed.phase(T0, 60) is ReleasePhase.IDLE
    assert closed.next_seq == 4


def test_the_bake_needs_both_time_and_requests_per_arm():
    rel = record(1, "release")
    early = bake_status(rel, now=T0 + dt.timedelta(minutes=5), minutes=60, min_requests=10,
                        champion_requests=99, challenger_requests=99)  # fmt: skip
    assert not early.over
    assert "min left" in early.reason
    short = bake_status(rel, now=T0 + dt.timedelta(minutes=61), minutes=60, min_requests=100,
                        champion_requests=500, challenger_requests=40)  # fmt: skip
    assert not short.over
    assert "challenger 40/100" in short.reason
    done = bake_status(rel, now=T0 + dt.timedelta(minutes=61), minutes=60, min_requests=100,
                       champion_requests=500, challenger_requests=100)  # fmt: skip
    assert done.over


def judgement(verdict: Verdict, challenger_requests: int = 500) -> ReleaseJudgement:
    arm = ArmSummary("1", 500, 0, 500, 2.0)
    return ReleaseJudgement(verdict, (), arm, ArmSummary("2", challenger_requests, 0, 500, 2.0), 0.05, ("r",))


def test_a_rollback_by_hand_wins_and_an_interrupted_promotion_completes():
    bake = bake_status(record(1, "release"), now=T0, minutes=60, min_requests=10,
                       champion_requests=0, challenger_requests=0)  # fmt: skip
    hand = override_verdict(
        judgement(Verdict.PROMOTE), by_hand="complaint", promoted_already=False, bake=bake
    )
    assert (hand.skip, hand.judgement.verdict, hand.judgement.reasons) == (
        False,
        Verdict.ROLLBACK,
        ("rolled back by hand: complaint",),
    )
    done = override_verdict(judgement(Verdict.ROLLBACK), by_hand=None, promoted_already=True, bake=bake)
    assert done.judgement.verdict is Verdict.PROMOTE
    waiting = override_verdict(judgement(Verdict.PROMOTE), by_hand=None, promoted_already=False, bake=bake)
    assert waiting.skip


def test_approval_decides_a_promotion_only():
    doc = {"verdict": "promote", "reasons": ["fine"]}
    assert approval_outcome(doc, None, None) == (True, ["fine"])
    yes = {"chosen_options": ["Approve"], "responded_by_user": {"id": "7", "name": "ana"}}
    assert approval_outcome(doc, "approve", yes) == (True, ["promotion approved by ana", "fine"])
    no = {"chosen_options": ["Reject"], "responded_by_user": {"id": "7", "name": "ana"}}
    assert approval_outcome(doc, "approve", no) == (False, ["promotion rejected by ana", "fine"])
    assert approval_outcome(doc, "approve", None)[0] is False
    assert approval_outcome({"verdict": "rollback", "reasons": []}, "approve", yes) == (False, [])


def test_the_watch_splits_its_level_over_its_looks_and_plans_each_step():
    assert watch_level(0.05, 60, 15) == pytest.approx(0.0125)
    assert watch_level(0.05, 0, 15) == 0.05
    ends = T0 + dt.timedelta(minutes=60)
    kw = {"promoted_version": "2", "ends": ends, "min_requests": 100}
    assert plan_watch(judgement(Verdict.PROMOTE), champion_now="1", now=T0, **kw).ended
    assert plan_watch(judgement(Verdict.PROMOTE, 10), champion_now="2", now=T0, **kw).skip
    assert not plan_watch(judgement(Verdict.PROMOTE, 10), champion_now="2", now=ends, **kw).skip
    assert plan_watch(judgement(Verdict.ROLLBACK), champion_now="2", now=T0, **kw).rollback
    assert plan_watch(judgement(Verdict.PROMOTE), champion_now="2", now=T0, **kw).skip
    closed = plan_watch(judgement(Verdict.PROMOTE), champion_now="2", now=ends, **kw)
    assert (closed.skip, closed.rollback, closed.ended) == (False, False, False)


def test_the_report_renders_from_its_json():
    rows = pd.DataFrame(
        {
            "prediction_id": [f"p{i}" for i in range(40)],
            "request_id": [f"r{i}" for i in range(40)],
            "model_version": ["1"] * 20 + ["2"] * 20,
            "arm": ["champion"] * 20 + ["challenger"] * 20,
            "status": [200] * 40,
            "error": [None] * 40,
            "latency_ms": [1.0 + i % 5 for i in range(40)],
            "prediction": ["0", "1"] * 20,
            "probability": [0.2 + 0.01 * (i % 20) for i in range(40)],
        }
    )
    result = judge_release(rows[:20], rows[20:], Guardrails())
    doc = release_document(result, pipeline="churn", phase="release", start=T0, end=T0)
    html = release_html(doc, "churn release v2 <b>")
    assert "churn release v2 &lt;b&gt;" in html
    assert "p95_latency_ratio" in html
    assert doc["verdict"] == "promote"
