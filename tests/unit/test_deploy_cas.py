"""Strict compare-and-set of the champion through the deployment ledger, against a real MLflow.

Deploy and rollback operators are run with ``execute()`` and a minimal task context (the task
instance's ids and the outlet-event accessor), on the embedded MLflow (SQLite) and the local disk:
a race between threads, and the states a task leaves when it dies half-way (made with the
ledger's own API, as the dying task would have left them).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections import defaultdict
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException

from mlops_ops.core import registry as reg
from mlops_ops.hooks.mlflow import MlflowHook
from mlops_ops.hooks.storage import DeploymentLedger, PipelineStorage
from mlops_ops.operators.deploy import DeployModelOperator
from mlops_ops.operators.rollback import RollbackModelOperator

# against a real MLflow store, with threads racing for the alias
pytestmark = pytest.mark.slow

ROUNDS = 10


class _TI(SimpleNamespace):
    def xcom_push(self, key, value):
        self.pushed[key] = value


def _context(run_id, dag_id="churn_training", task_id="deploy"):
    return {
        "ti": _TI(dag_id=dag_id, run_id=run_id, task_id=task_id, pushed={}),
        "outlet_events": defaultdict(SimpleNamespace),
    }


def _decision(version, baseline):
    return {
        "promote": True,
        "status": "promote",
        "challenger_version": version,
        "baseline_version": baseline,
        "reasons": ["test"],
        "metrics": {"roc_auc": 0.8},
        "champion_metrics": None,
        "report_uri": f"file:///reports/v{version}/evaluate.json",
    }


def _deploy(version, baseline, run_id):
    op = DeployModelOperator(task_id="deploy", pipeline="churn", decision=_decision(version, baseline))
    return op.execute(_context(run_id))


def _rollback(run_id, **kwargs):
    op = RollbackModelOperator(task_id="rollback", pipeline="churn", **kwargs)
    return op.execute(_context(run_id, dag_id="churn_rollback", task_id="rollback"))


def _register(count):
    """``count`` new versions of the registered model ``churn`` (no model files: deploy reads none)."""
    client = MlflowHook().client
    if not client.search_registered_models("name = 'churn'"):
        client.create_registered_model("churn")
    experiment = MlflowHook().ensure_experiment("churn")
    run = client.create_run(experiment)
    return [
        str(
            client.create_model_version(
                "churn", source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id
            ).version
        )
        for _ in range(count)
    ]


def _champion():
    found = MlflowHook().get_alias_version("churn")
    return str(found.version) if found is not None else None


def _ledger():
    return DeploymentLedger(PipelineStorage("churn"))


def _records(home):
    return [
        json.loads(p.read_text()) for p in sorted((home / "storage" / "churn" / "deployments").glob("*.json"))
    ]


def _leave_claim(version, previous, run_id, *, age_seconds=0.0):
    """The state a deploy task leaves when it dies right after claiming the next seq."""
    ledger = _ledger()
    at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=age_seconds)
    seq = ledger.read().next_seq
    record = reg.build_record(
        pipeline="churn",
        version=version,
        previous_version=previous,
        action="promote",
        seq=seq,
        deployed_at=at,
        claimant=reg.Claimant("churn_training", run_id, "deploy"),
        decision={"status": "promote", "reasons": ["test"]},
    )
    assert ledger.claim(reg.build_claim(record=record, alias_before=previous, claimed_at=at))
    return seq


@pytest.fixture
def home(mlflow_store):
    return mlflow_store


def _contend(version, expected, run_id, barrier, outcomes):
    op = DeployModelOperator(task_id="deploy", pipeline="churn", decision=_decision(version, expected))
    ctx = _context(run_id)
    barrier.wait()
    try:
        outcomes[version] = op.execute(ctx)
    except AirflowFailException as err:
        outcomes[version] = err


def test_concurrent_promotions_of_two_challengers_one_wins_every_round(home, caplog):
    versions = _register(1 + 2 * ROUNDS)
    _deploy(versions[0], None, "manual__first")
    champion = versions[0]
    collided = 0
    caplog.set_level(logging.INFO, logger="mlops_ops.hooks.mlflow")
    for round_ in range(ROUNDS):
        contenders = versions[1 + 2 * round_ : 3 + 2 * round_]
        barrier = threading.Barrier(len(contenders))
        outcomes: dict[str, object] = {}

        caplog.clear()
        threads = [
            threading.Thread(target=_contend, args=(v, champion, f"manual__{round_}_{v}", barrier, outcomes))
            for v in contenders
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [v for v, o in outcomes.items() if isinstance(o, dict)]
        losers = [o for o in outcomes.values() if isinstance(o, AirflowFailException)]
        assert len(winners) == 1, outcomes
        assert len(losers) == 1, outcomes
        assert "champion changed since evaluation" in str(losers[0])
        (winner,) = winners
        assert _champion() == winner
        records = _records(home)
        assert len(records) == round_ + 2  # exactly one new record per round
        head = max(records, key=lambda r: r["seq"])
        assert (head["version"], head["previous_version"], head["seq"]) == (winner, champion, round_ + 2)
        collided += "claimed by another promotion first" in caplog.text
        champion = winner
    print(f"\n{collided} of {ROUNDS} rounds were decided by the exclusive claim itself")


def test_a_task_that_died_after_claiming_blocks_others_and_its_retry_completes(home):
    v1, v2, v3 = _register(3)
    _deploy(v1, None, "manual__1")
    seq = _leave_claim(v2, v1, "manual__2")
    with pytest.raises(AirflowFailException, match="champion changed since evaluation") as err:
        _deploy(v3, v1, "manual__3")  # a concurrent promotion: v2's claim is live
    assert "another promotion holds the champion" in str(err.value)
    assert _champion() == v1

    retry = _deploy(v2, v1, "manual__2")
    assert (retry["outcome"], retry["ledger_seq"], retry["previous_version"]) == ("resumed", seq, v1)
    assert _champion() == v2
    assert [(r["version"], r["seq"]) for r in _records(home)] == [(v1, 1), (v2, 2)]
    tags = MlflowHook().client.get_model_version("churn", v2).tags
    assert (tags["mlops.ledger_seq"], tags["mlops.previous_champion"]) == ("2", v1)


def test_a_task_that_died_after_moving_the_alias_is_rolled_forward_by_the_next_one(home):
    v1, v2, v3 = _register(3)
    _deploy(v1, None, "manual__1")
    _leave_claim(v2, v1, "manual__2")
    MlflowHook().client.set_registered_model_alias("churn", "champion", v2)  # ...then it died

    result = _deploy(v3, v2, "manual__3")  # evaluated against v2, which serves
    assert (result["outcome"], result["previous_version"], result["ledger_seq"]) == ("promoted", v2, 3)
    records = _records(home)
    assert [(r["version"], r["previous_version"], r["seq"]) for r in records] == [
        (v1, None, 1),
        (v2, v1, 2),
        (v3, v2, 3),
    ]
    assert records[1]["airflow.run_id"] == "manual__2"  # written for the task that died
    assert MlflowHook().client.get_model_version("churn", v2).tags["mlops.ledger_seq"] == "2"

    late = _deploy(v2, v1, "manual__2")  # its retry finds its promotion recorded
    assert late["outcome"] == "already_recorded"
    assert _champion() == v3
    assert len(_records(home)) == 3


def test_a_claim_abandoned_past_its_lease_is_superseded_and_its_retry_refused(home):
    v1, v2, v3 = _register(3)
    _deploy(v1, None, "manual__1")
    _leave_claim(v2, v1, "manual__2", age_seconds=reg.DEFAULT_CLAIM_LEASE_SECONDS + 5)

    result = _deploy(v3, v1, "manual__3")
    assert (result["outcome"], result["ledger_seq"]) == ("promoted", 3)
    assert _records(home)[-1]["superseded_claims"] == [2]
    with pytest.raises(
        AirflowFailException, match="champion changed since evaluation: expected v1, found v3"
    ):
        _deploy(v2, v1, "manual__2")
    assert _champion() == v3
    assert [r["version"] for r in _records(home)] == [v1, v3]


def test_a_hand_moved_alias_is_refused_and_reconciled_by_a_forced_rollback(home):
    v1, v2, v3 = _register(3)
    _deploy(v1, None, "manual__1")
    _deploy(v2, v1, "manual__2")
    MlflowHook().client.set_registered_model_alias("churn", "champion", v1)  # by hand, outside mlops-ops

    with pytest.raises(AirflowFailException, match="moved outside mlops-ops") as err:
        _deploy(v3, v1, "manual__3")
    assert "churn_rollback" in str(err.value)
    assert "force=true" in str(err.value)
    with pytest.raises(AirflowFailException, match="moved outside mlops-ops"):
        _rollback("manual__rb1", version="previous")
    assert _champion() == v1
    assert len(_records(home)) == 2

    kept = _rollback("manual__rb2", version="1", force="true", reason="v2 pulled by hand at 3 am")
    assert kept["changed"] is True
    assert kept["previous_version"] == v2
    record = _records(home)[-1]
    assert record["action"] == "rollback"
    assert record["reconciled"] == {"ledger_head": v2, "alias_found": v1}
    assert record["reason"] == "v2 pulled by hand at 3 am"
    assert _champion() == v1

    result = _deploy(v3, v1, "manual__3b")  # promotions work again
    assert result["previous_version"] == v1
    assert _champion() == v3


def test_rollback_refusals_name_the_problem_and_change_nothing(home):
    with pytest.raises(AirflowFailException, match="churn has no deployment ledger"):
        _rollback("manual__a")
    v1, v2, unknown_gate = _register(3)
    _deploy(v1, None, "manual__1")
    with pytest.raises(AirflowFailException, match="v1 was the first champion of churn"):
        _rollback("manual__b")
    _deploy(v2, v1, "manual__2")
    with pytest.raises(AirflowFailException, match="churn has no version 99 .*its versions are v1, v2, v3"):
        _rollback("manual__c", version="99")
    with pytest.raises(AirflowFailException, match="'previous' or a registered version number"):
        _rollback("manual__d", version="latest")
    with pytest.raises(AirflowFailException, match="v3 never passed a gate") as err:
        _rollback("manual__e", version=unknown_gate)
    assert "force=true" in str(err.value)
    assert _champion() == v2
    assert len(_records(home)) == 2

    back = _rollback("manual__f", version="previous", reason="drift")
    assert (back["version"], back["previous_version"], back["changed"]) == (v1, v2, True)
    again = _rollback("manual__g", version="previous")
    assert (again["changed"], again["outcome"]) == (False, "already_champion")
    assert "nothing written" in again["message"]
    assert len(_records(home)) == 3


def test_a_rollback_first_records_a_promotion_that_died_after_moving_the_alias(home):
    v1, v2, v3 = _register(3)
    _deploy(v1, None, "manual__1")
    _deploy(v2, v1, "manual__2")
    _leave_claim(v3, v2, "manual__3")
    MlflowHook().client.set_registered_model_alias("churn", "champion", v3)  # ...then it died

    back = _rollback("manual__rb", version="previous")  # undoes v3, which is what serves
    assert (back["version"], back["previous_version"], back["ledger_seq"]) == (v2, v3, 4)
    assert [(r["version"], r["action"], r["seq"]) for r in _records(home)] == [
        (v1, "promote", 1),
        (v2, "promote", 2),
        (v3, "promote", 3),
        (v2, "rollback", 4),
    ]
    assert _champion() == v2


def test_concurrent_promotions_under_cpu_load_one_wins_and_the_loser_is_told_why(home):
    """The same race with a busy process per core beside it: the windows between reads stretch."""
    from tests.load import busy_cpu

    versions = _register(1 + 2 * ROUNDS)
    _deploy(versions[0], None, "manual__first")
    champion = versions[0]
    with busy_cpu():
        for round_ in range(ROUNDS):
            contenders = versions[1 + 2 * round_ : 3 + 2 * round_]
            barrier = threading.Barrier(len(contenders))
            outcomes: dict[str, object] = {}
            threads = [
                threading.Thread(
                    target=_contend, args=(v, champion, f"load__{round_}_{v}", barrier, outcomes)
                )
                for v in contenders
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            winners = [v for v, o in outcomes.items() if isinstance(o, dict)]
            losers = [str(o) for o in outcomes.values() if isinstance(o, AirflowFailException)]
            assert len(winners) == 1, outcomes
            assert len(losers) == 1, outcomes
            assert "champion changed since evaluation" in losers[0]
            assert "outside mlops-ops" not in losers[0], losers[0]
            assert "rollback" not in losers[0], losers[0]
            assert _champion() == winners[0]
            champion = winners[0]


def _promote_in_between(monkeypatch, winner, expected, *, record):
    """Make another promotion claim and move the alias right before this one reads the alias.

    The loser has then read the ledger before that claim existed and reads the alias after it
    moved: the interleaving that looked like an alias moved by hand. ``record`` also lets the
    winner write its ledger record before the alias read returns.
    """
    real = MlflowHook.get_alias_version
    done: list[bool] = []

    def alias_after_the_winner_moved(self, name, alias="champion"):
        if not done:
            done.append(True)
            seq = _leave_claim(winner, expected, "manual__winner")
            MlflowHook().client.set_registered_model_alias("churn", "champion", winner)
            if record:
                ledger = _ledger()
                claim = next(c for c in ledger.read().claims if c.seq == seq)
                ledger.write_record(claim)
        return real(self, name, alias)

    monkeypatch.setattr(MlflowHook, "get_alias_version", alias_after_the_winner_moved)


@pytest.mark.parametrize("record", [False, True], ids=["claim-in-flight", "just-recorded"])
def test_a_promotion_in_flight_is_named_not_mistaken_for_a_hand_moved_alias(home, monkeypatch, record):
    v1, v2, v3 = _register(3)
    _deploy(v1, None, "manual__1")
    _promote_in_between(monkeypatch, v2, v1, record=record)
    with pytest.raises(AirflowFailException) as err:
        _deploy(v3, v1, "manual__loser")
    message = str(err.value)
    assert "champion changed since evaluation" in message
    assert f"v{v2}" in message
    assert "outside mlops-ops" not in message
    if not record:
        assert "another promotion still in progress" in message
        assert "manual__winner" in message
    assert _champion() == v2
    assert not [r for r in _records(home) if r["version"] == v3]


def test_a_claim_in_flight_that_has_not_moved_the_alias_yet_is_named(home):
    v1, v2, v3 = _register(3)
    _deploy(v1, None, "manual__1")
    _leave_claim(v2, v1, "manual__winner")
    with pytest.raises(AirflowFailException, match="is in progress") as err:
        _deploy(v3, v1, "manual__loser")
    assert f"promote v{v2} by churn_training/manual__winner/deploy" in str(err.value)


def test_a_killed_ledger_writers_temporary_file_is_removed_by_the_next_writer(home):
    import os
    import time

    v1, v2 = _register(2)
    _deploy(v1, None, "manual__1")
    claims = home / "storage" / "churn" / "deployments" / "claims"
    stale = claims / "00000002.json.tmp-deadbeef"
    stale.write_text("{")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    fresh = claims / "00000002.json.tmp-cafebabe"  # a live writer's: left alone
    fresh.write_text("{")
    _deploy(v2, v1, "manual__2")
    assert not stale.exists()
    assert fresh.exists()
