"""The deployment ledger's rules (mlops_ops.core.registry) and its files on the local disk."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from mlops_ops.core import registry as reg
from mlops_ops.core.registry import Claimant, LedgerState

T0 = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)
ME = Claimant("churn_training", "manual__me", "deploy")
OTHER = Claimant("churn_training", "manual__other", "deploy")


def record(seq, version, previous, *, action="promote", by=OTHER, status="promote", at=None, legacy=False):
    at = at or T0 + dt.timedelta(minutes=seq)
    doc = reg.build_record(
        pipeline="churn",
        version=version,
        previous_version=previous,
        action=action,
        seq=max(seq, 1),
        deployed_at=at,
        claimant=by,
        decision={"status": status, "reasons": ["test"]},
    )
    if legacy:
        doc.pop("seq")
    return reg.parse_record(reg.record_name(version, at), doc)


def claim(seq, version, previous, *, by=OTHER, at=T0, action="promote", alias_before="same"):
    rec = reg.build_record(
        pipeline="churn",
        version=version,
        previous_version=previous,
        action=action,
        seq=seq,
        deployed_at=at,
        claimant=by,
    )
    doc = reg.build_claim(
        record=rec, alias_before=previous if alias_before == "same" else alias_before, claimed_at=at
    )
    return reg.parse_claim(reg.claim_file_name(seq), doc)


def plan(state, *, alias, version, expected, by=ME, now=None, **kwargs):
    return reg.plan_promotion(
        state,
        alias_version=alias,
        version=version,
        expected=expected,
        claimant=by,
        now=now or T0 + dt.timedelta(hours=1),
        pipeline="churn",
        **kwargs,
    )


# -- records, ordering, head ----------------------------------------------------------------------


def test_the_head_is_the_highest_seq_not_the_latest_file_name():
    late_name = record(1, "1", None, at=T0 + dt.timedelta(days=9))  # a clock running ahead
    state = LedgerState.build([record(2, "2", "1"), late_name, record(3, "3", "2")])
    assert [r.seq for r in state.records] == [1, 2, 3]
    assert state.head.version == "3"
    assert state.next_seq == 4


def test_records_written_before_sequence_numbers_sort_first_by_name():
    old_a = record(1, "1", None, legacy=True, at=T0)
    old_b = record(1, "2", "1", legacy=True, at=T0 + dt.timedelta(days=1))
    new = record(1, "3", "2", at=T0 - dt.timedelta(days=30))
    state = LedgerState.build([new, old_b, old_a])
    assert [(r.seq, r.version) for r in state.records] == [(0, "1"), (0, "2"), (1, "3")]
    assert state.head.version == "3"
    assert LedgerState.build([old_b, old_a]).head.version == "2"
    assert LedgerState.build([old_a]).next_seq == 1


def test_two_records_with_one_seq_are_an_error_naming_both_files():
    a, b = record(2, "2", "1"), record(2, "3", "1")
    with pytest.raises(reg.LedgerError, match="share a sequence number") as err:
        LedgerState.build([a, b])
    assert a.name in str(err.value)
    assert b.name in str(err.value)


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ([1, 2], "expected a JSON object"),
        ({"seq": 1}, "no 'version'"),
        ({"version": "1", "seq": -1}, "'seq' must be a non-negative integer"),
        ({"version": "1", "seq": "2"}, "'seq' must be a non-negative integer"),
        ({"version": "1", "action": "undo"}, "'action' must be one of"),
    ],
)
def test_a_malformed_record_names_the_file_and_the_problem(doc, needle):
    with pytest.raises(reg.LedgerError, match=needle) as err:
        reg.parse_record("20260101T000000.000000Z-v1.json", doc)
    assert "20260101T000000.000000Z-v1.json" in str(err.value)


def test_a_record_has_the_documented_fields_and_versions_are_strings():
    doc = reg.build_record(
        pipeline="churn",
        version=3,
        previous_version=2,
        action="rollback",
        seq=7,
        deployed_at=T0,
        claimant=ME,
        decision={"status": "promote"},
        evidence_uri="file:///r/evaluate.json",
        reason="bad predictions",
    )
    assert doc["version"] == "3"
    assert doc["previous_version"] == "2"
    assert doc["seq"] == 7
    assert doc["action"] == "rollback"
    assert doc["reason"] == "bad predictions"
    assert doc["deployed_at"] == "2026-01-05T12:00:00+00:00"
    assert (doc["airflow.dag_id"], doc["airflow.run_id"], doc["airflow.task_id"]) == (
        "churn_training",
        "manual__me",
        "deploy",
    )
    with pytest.raises(reg.LedgerError, match="action must be one of"):
        reg.build_record(
            pipeline="c", version="1", previous_version=None, action="x", seq=1, deployed_at=T0, claimant=ME
        )
    with pytest.raises(reg.LedgerError, match="timezone-aware"):
        reg.build_record(
            pipeline="c",
            version="1",
            previous_version=None,
            action="promote",
            seq=1,
            deployed_at=T0.replace(tzinfo=None),
            claimant=ME,
        )


# -- claims -----------------------------------------------------------------------------------------


def test_a_claim_round_trips_and_names_its_record_deterministically():
    c = claim(4, "5", "3", by=ME)
    assert c.seq == 4
    assert c.version == "5"
    assert c.previous_version == "3"
    assert c.alias_before == "3"
    assert c.claimant == ME
    assert c.record_name == reg.record_name("5", T0) == "20260105T120000.000000Z-v5.json"
    assert c.record["seq"] == 4
    assert c.is_for(ME, "5", "promote")
    assert not c.is_for(ME, "6", "promote")
    assert not c.is_for(OTHER, "5", "promote")
    assert not c.is_for(ME, "5", "rollback")


@pytest.mark.parametrize(
    ("name", "doc"),
    [
        ("00000004.json", {"seq": 5}),
        ("00000004.json", {"seq": 4, "version": "1"}),
        ("00000004.json", "text"),
    ],
)
def test_a_malformed_claim_is_an_error_saying_what_to_do(name, doc):
    with pytest.raises(reg.LedgerError, match="deployments/claims/"):
        reg.parse_claim(name, doc)


def test_pending_claims_are_above_the_head_unrecorded_and_unreleased():
    records = [record(1, "1", None), record(2, "2", "1")]
    claims = [
        claim(1, "1", None),
        claim(2, "2", "1"),
        claim(3, "3", "2"),
        claim(4, "4", "2"),
        claim(5, "5", "2"),
    ]
    state = LedgerState.build(records, claims, released=[4])
    assert [c.seq for c in state.pending] == [3, 5]
    assert state.live_claim.seq == 5  # 3 was abandoned and superseded by 5
    assert state.is_live(claims[4])
    assert not state.is_live(claims[2])
    assert state.next_seq == 6


def test_next_seq_skips_past_every_claim_even_released_ones():
    state = LedgerState.build([record(1, "1", None)], [claim(2, "2", "1")], released=[2])
    assert state.pending == ()
    assert state.next_seq == 3


# -- planning a promotion ---------------------------------------------------------------------------


def test_the_first_promotion_claims_seq_1_with_no_previous_version():
    p = plan(LedgerState(), alias=None, version="1", expected=None)
    assert (p.kind, p.seq, p.previous_version, p.alias_before) == ("claim", 1, None, None)


def test_a_promotion_claims_the_next_seq_over_the_expected_champion():
    state = LedgerState.build([record(1, "1", None), record(2, "2", "1")])
    p = plan(state, alias="2", version="3", expected="2")
    assert (p.kind, p.seq, p.previous_version, p.alias_before) == ("claim", 3, "2", "2")


def test_a_champion_other_than_the_expected_one_is_refused():
    state = LedgerState.build([record(1, "1", None), record(2, "2", "1")])
    with pytest.raises(
        reg.ChampionChangedError, match="champion changed since evaluation: expected v1, found v2"
    ):
        plan(state, alias="2", version="3", expected="1")
    with pytest.raises(reg.ChampionChangedError, match="expected no champion, found v2"):
        plan(state, alias="2", version="3", expected=None)


def test_without_a_ledger_the_alias_is_compared_with_the_expected_version():
    with pytest.raises(reg.ChampionChangedError, match="expected no champion, found v4"):
        plan(LedgerState(), alias="4", version="5", expected=None)
    adopted = plan(LedgerState(), alias=4, version="5", expected="4")  # int on SQLite, str over REST
    assert (adopted.kind, adopted.seq, adopted.previous_version) == ("claim", 1, "4")


def test_an_alias_moved_outside_mlops_ops_is_refused_with_how_to_reconcile():
    state = LedgerState.build([record(1, "1", None), record(2, "2", "1")])
    with pytest.raises(reg.AliasDivergedError) as err:
        plan(state, alias="1", version="3", expected="1")
    message = str(err.value)
    assert "points at v1" in message
    assert "says v2" in message
    assert "moved outside mlops-ops" in message
    assert "churn_rollback" in message
    assert "force=true" in message
    with pytest.raises(reg.AliasDivergedError, match="is not set"):
        plan(state, alias=None, version="3", expected=None)


def test_force_records_the_alias_as_found_instead_of_refusing():
    state = LedgerState.build([record(1, "1", None), record(2, "2", "1")])
    p = plan(state, alias="1", version="2", expected="2", action="rollback", force=True)
    assert (p.kind, p.seq, p.previous_version, p.alias_before) == ("claim", 3, "1", "1")
    assert p.reconciled == {"ledger_head": "2", "alias_found": "1"}
    # keeping what the hand move put there: the record says it replaced the ledger's champion
    keep = plan(state, alias="1", version="1", expected="2", action="rollback", force=True)
    assert (keep.kind, keep.previous_version, keep.alias_before) == ("claim", "2", "1")


def test_the_version_already_champion_with_the_ledger_agreeing_is_a_noop():
    state = LedgerState.build([record(1, "1", None), record(2, "2", "1", action="rollback")])
    p = plan(state, alias="2", version="2", expected="2", action="rollback")
    assert p.kind == "noop"
    assert p.record is state.head


def test_a_retry_finds_its_own_record_and_does_nothing_twice():
    state = LedgerState.build([record(1, "1", None), record(2, "2", "1", by=ME)])
    p = plan(state, alias="2", version="2", expected="1")
    assert (p.kind, p.seq) == ("done", 2)
    # even when the champion has moved on since (a deployment happens once per task)
    later = LedgerState.build([*state.records, record(3, "3", "2")])
    assert plan(later, alias="3", version="2", expected="1").kind == "done"


def test_a_rollback_rerun_after_a_newer_promotion_rolls_back_again():
    mine = record(3, "1", "2", action="rollback", by=ME)
    state = LedgerState.build([record(1, "1", None), record(2, "2", "1"), mine])
    assert plan(state, alias="1", version="1", expected="1", action="rollback").kind == "done"
    newer = LedgerState.build([*state.records, record(4, "3", "1")])
    p = plan(newer, alias="3", version="1", expected="3", action="rollback")
    assert (p.kind, p.seq, p.previous_version) == ("claim", 5, "3")


def test_a_retry_resumes_its_own_live_claim():
    state = LedgerState.build([record(1, "1", None)], [claim(2, "2", "1", by=ME)])
    for alias in ("1", "2"):  # before or after it moved the alias
        p = plan(state, alias=alias, version="2", expected="1")
        assert (p.kind, p.seq, p.claim.seq) == ("resume", 2, 2)


def test_another_live_claim_refuses_while_its_lease_runs():
    state = LedgerState.build([record(1, "1", None)], [claim(2, "2", "1", at=T0)])
    with pytest.raises(reg.ChampionChangedError, match="champion changed since evaluation") as err:
        plan(state, alias="1", version="3", expected="1", now=T0 + dt.timedelta(seconds=30))
    assert "another promotion holds the champion" in str(err.value)
    assert "claim 2" in str(err.value)
    assert "abandoned from 2026-01-05T12:10:00Z" in str(err.value)


def test_a_claim_abandoned_past_its_lease_is_superseded_by_the_next_seq():
    state = LedgerState.build([record(1, "1", None)], [claim(2, "2", "1", at=T0)])
    p = plan(state, alias="1", version="3", expected="1", now=T0 + dt.timedelta(seconds=601))
    assert (p.kind, p.seq, p.previous_version, p.superseded) == ("claim", 3, "1", (2,))
    short = plan(
        state, alias="1", version="3", expected="1", now=T0 + dt.timedelta(seconds=61), lease_seconds=60
    )
    assert short.seq == 3
    # the crashed claimant's retry afterwards: its claim is no longer live, the new one is
    after = LedgerState.build(
        state.records, [*state.claims, claim(3, "3", "1", by=ME, at=T0 + dt.timedelta(seconds=601))]
    )
    with pytest.raises(reg.ChampionChangedError, match="another promotion holds the champion"):
        plan(after, alias="1", version="2", expected="1", by=OTHER, now=T0 + dt.timedelta(seconds=602))


def test_a_claim_whose_alias_moved_is_rolled_forward_by_a_promotion_evaluated_against_it():
    state = LedgerState.build([record(1, "1", None)], [claim(2, "2", "1")])
    p = plan(state, alias="2", version="3", expected="2")
    assert (p.kind, p.claim.seq) == ("roll_forward", 2)
    # evaluated against the champion before it: refused at once, the claimant's record is its own
    with pytest.raises(reg.ChampionChangedError, match="expected v1, found v2 \\(promoted by claim 2"):
        plan(state, alias="2", version="3", expected="1")


# -- rollback targets and gate evidence --------------------------------------------------------------


def test_previous_undoes_the_latest_promotion_and_is_idempotent():
    promoted = [record(1, "1", None), record(2, "2", "1")]
    assert reg.resolve_previous(LedgerState.build(promoted)) == "1"
    rolled_back = LedgerState.build([*promoted, record(3, "1", "2", action="rollback")])
    assert reg.resolve_previous(rolled_back) == "1"  # the champion already: a re-run changes nothing
    again = LedgerState.build([*rolled_back.records, record(4, "3", "1")])
    assert reg.resolve_previous(again) == "1"


def test_previous_is_refused_without_an_earlier_champion_or_a_ledger():
    with pytest.raises(reg.RollbackRefusedError, match="first champion of churn"):
        reg.resolve_previous(LedgerState.build([record(1, "1", None)]), "churn")
    with pytest.raises(reg.RollbackRefusedError, match="no deployment ledger"):
        reg.resolve_previous(LedgerState(), "churn")
    with pytest.raises(reg.RollbackRefusedError, match="records no promotion"):
        reg.resolve_previous(LedgerState.build([record(1, "1", "9", action="rollback")]), "churn")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("previous", "previous"),
        (" Previous ", "previous"),
        ("", "previous"),
        (None, "previous"),
        ("3", "3"),
        (" v12 ", "12"),
        (7, "7"),
        ("007", "7"),
    ],
)
def test_version_requests(given, expected):
    assert reg.parse_version_request(given) == expected


@pytest.mark.parametrize("given", ["three", "3.0", "-1", "v", "latest"])
def test_a_bad_version_request_says_what_is_expected(given):
    with pytest.raises(reg.RollbackRefusedError, match="'previous' or a registered version number"):
        reg.parse_version_request(given)


def test_gate_evidence_from_the_tag_or_a_passing_promotion_in_the_ledger():
    state = LedgerState.build(
        [record(1, "1", None), record(2, "2", "1", action="rollback", status="promote")]
    )
    assert "mlops.gate=promote" in reg.gate_evidence("5", {"mlops.gate": "promote"}, state)
    # re-evaluating the champion re-tags it "reject"; its promotion in the ledger still counts
    assert "seq 1" in reg.gate_evidence("1", {"mlops.gate": "reject"}, state)
    assert reg.gate_evidence("2", {}, state) is None  # a rollback record is no gate
    assert reg.gate_evidence("3", {"mlops.gate": "reject"}, state) is None
    forced = LedgerState.build([record(1, "4", None, status="reject")])
    assert reg.gate_evidence("4", {}, forced) is None


# -- the ledger's files on the local disk -----------------------------------------------------------


@pytest.fixture
def ledger(tmp_path):
    from mlops_ops.hooks.storage import DeploymentLedger, PipelineStorage

    return DeploymentLedger(PipelineStorage("churn", root=f"file://{tmp_path}"))


def _claim_doc(seq, version, by=ME, at=T0):
    rec = reg.build_record(
        pipeline="churn",
        version=version,
        previous_version=None,
        action="promote",
        seq=seq,
        deployed_at=at,
        claimant=by,
    )
    return reg.build_claim(record=rec, alias_before=None, claimed_at=at)


def test_only_one_of_many_concurrent_claims_of_a_seq_wins(ledger, tmp_path):
    barrier = threading.Barrier(12)
    results: list[bool] = []

    def contender(i):
        doc = _claim_doc(1, str(i + 1), by=Claimant("d", f"run{i}", "deploy"))
        barrier.wait()
        results.append(ledger.claim(doc))

    threads = [threading.Thread(target=contender, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 11 + [True]
    state = ledger.read()
    assert len(state.claims) == 1
    assert state.live_claim.seq == 1
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]


def test_a_released_claim_is_no_longer_pending(ledger):
    assert ledger.claim(_claim_doc(1, "1"))
    (c,) = ledger.read().claims
    assert ledger.release(c, "alias moved by hand")
    assert not ledger.release(c, "twice")  # write-once too
    state = ledger.read()
    assert state.pending == ()
    assert state.next_seq == 2


def test_writing_a_claims_record_twice_is_a_noop_and_never_overwrites(ledger, tmp_path):
    ledger.claim(_claim_doc(1, "1"))
    (c,) = ledger.read().claims
    path = ledger.write_record(c)
    first = (tmp_path / "churn" / "deployments" / c.record_name).read_bytes()
    assert ledger.write_record(c) == path  # a retry or a roll-forward writes the same bytes
    assert (tmp_path / "churn" / "deployments" / c.record_name).read_bytes() == first
    state = ledger.read()
    assert [(r.seq, r.version) for r in state.records] == [(1, "1")]
    assert state.pending == ()
    impostor = reg.parse_claim("00000002.json", {**_claim_doc(2, "1"), "record_name": c.record_name})
    with pytest.raises(reg.LedgerError, match="refusing to overwrite history"):
        ledger.write_record(impostor)


def test_an_unreadable_ledger_file_is_named(ledger, tmp_path):
    folder = tmp_path / "churn" / "deployments"
    folder.mkdir(parents=True)
    (folder / "20260101T000000.000000Z-v1.json").write_text("{not json")
    with pytest.raises(reg.LedgerError, match="20260101T000000.000000Z-v1.json is not valid JSON"):
        ledger.read()
