"""Two OS processes promote two challengers at the same moment against a real `mlflow server` on
PostgreSQL, both expecting the same champion: exactly one wins, every round.

Each process is a long-lived worker (spawned, so it shares no state with pytest or the other
worker) that runs DeployModelOperator.execute() as a deploy task would. A barrier releases both
at once each round. The ledger is on the local disk both processes share. A busy process per
core runs beside them, as on a loaded machine: the loser must still be told that another
promotion is in progress, never that the alias was moved by hand.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import traceback
from collections import defaultdict
from types import SimpleNamespace

import pytest

from tests.load import busy_cpu

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROUNDS = 10
LOST_AT_CLAIM = "claimed by another promotion first"


class _TI(SimpleNamespace):
    def xcom_push(self, key, value):
        self.pushed[key] = value


def _decision(version, baseline):
    return {
        "promote": True,
        "status": "promote",
        "challenger_version": version,
        "baseline_version": baseline,
        "reasons": ["race"],
        "metrics": {},
        "champion_metrics": None,
        "report_uri": None,
    }


def _deploy(version, baseline, run_id):
    from mlops_ops.operators.deploy import DeployModelOperator

    op = DeployModelOperator(task_id="deploy", pipeline="churn", decision=_decision(version, baseline))
    context = {
        "ti": _TI(dag_id="churn_training", run_id=run_id, task_id="deploy", pushed={}),
        "outlet_events": defaultdict(SimpleNamespace),
    }
    return op, context


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _worker(name, barrier, tasks, results):
    """One deploy process: for each (version, expected, run_id), wait at the barrier, then promote."""
    from airflow.sdk.exceptions import AirflowFailException

    logger = logging.getLogger("mlops_ops.hooks.mlflow")
    logger.setLevel(logging.INFO)
    collect = _Collect()
    logger.addHandler(collect)
    while True:
        task = tasks.get()
        if task is None:
            return
        version, expected, run_id = task
        op, context = _deploy(version, expected, run_id)
        collect.messages.clear()
        try:
            _ = op.mlflow_hook.client  # connect before the barrier: the race is the promotion itself
            barrier.wait(timeout=120)
            outcome = ("won", op.execute(context))
        except AirflowFailException as err:
            outcome = ("refused", str(err))
        except Exception:
            outcome = ("error", traceback.format_exc())
        results.put((name, version, outcome, any(LOST_AT_CLAIM in m for m in collect.messages)))


def test_two_processes_promoting_at_once_exactly_one_wins(airflow_db, mlops_home, mlflow_server, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps({"conn_type": "mlflow", "host": mlflow_server})
    )
    client = MlflowClient(tracking_uri=mlflow_server)
    client.create_registered_model("churn")
    run = client.create_run(client.create_experiment("churn"))
    versions = [
        str(
            client.create_model_version(
                "churn", f"{run.info.artifact_uri}/model", run_id=run.info.run_id
            ).version
        )
        for _ in range(1 + 2 * ROUNDS)
    ]
    op, context = _deploy(versions[0], None, "manual__first")
    op.execute(context)
    champion = versions[0]
    ledger_dir = mlops_home / "storage" / "churn" / "deployments"

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    queues = {name: ctx.Queue() for name in ("a", "b")}
    workers = [
        ctx.Process(target=_worker, args=(name, barrier, queue, results), daemon=True)
        for name, queue in queues.items()
    ]
    for w in workers:
        w.start()
    wins = {"a": 0, "b": 0}
    decided_by_claim = 0
    load = contextlib.ExitStack()
    try:
        # a busy process per core beside the race: a loaded machine stretches every window
        load.enter_context(busy_cpu())
        for round_ in range(ROUNDS):
            challengers = {"a": versions[1 + 2 * round_], "b": versions[2 + 2 * round_]}
            for name, queue in queues.items():
                queue.put((challengers[name], champion, f"manual__{round_}_{name}"))
            outcomes = [results.get(timeout=300) for _ in queues]
            errors = [o for o in outcomes if o[2][0] == "error"]
            assert not errors, errors[0][2][1]
            won = [o for o in outcomes if o[2][0] == "won"]
            refused = [o for o in outcomes if o[2][0] == "refused"]
            assert len(won) == 1, outcomes
            assert len(refused) == 1, outcomes
            assert "champion changed since evaluation" in refused[0][2][1]
            assert "outside mlops-ops" not in refused[0][2][1], "a promotion in flight is not a hand move"
            winner_name, winner, (_, returned), _ = won[0]
            assert returned["previous_version"] == champion
            alias = client.get_model_version_by_alias("churn", "champion")
            assert str(alias.version) == winner
            records = [json.loads(p.read_text()) for p in ledger_dir.glob("*.json")]
            assert len(records) == round_ + 2, "exactly one new ledger record per round"
            head = max(records, key=lambda r: r["seq"])
            assert (head["version"], head["previous_version"], head["seq"]) == (winner, champion, round_ + 2)
            loser_version = refused[0][1]
            assert not [r for r in records if r["version"] == loser_version]
            assert "mlops.promoted_at" not in client.get_model_version("churn", loser_version).tags
            wins[winner_name] += 1
            decided_by_claim += refused[0][3]
            champion = winner
    finally:
        load.close()
        for queue in queues.values():
            queue.put(None)
        for w in workers:
            w.join(timeout=60)
            if w.is_alive():
                w.terminate()
    print(
        f"\n{ROUNDS} rounds: process a won {wins['a']}, process b won {wins['b']}; "
        f"{decided_by_claim} decided by the exclusive claim (both had passed the ledger check)"
    )
