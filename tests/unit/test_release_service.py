"""ReleaseService over a real MLflow registry (SQLite) and real storage: the challenger alias moved
by compare-and-set over the release ledger, a second release replacing the first, refusals that
change nothing, a promotion through the champion ledger, and retries that complete their step."""

from __future__ import annotations

import pytest

from mlops_ops.core.registry import ChampionChangedError, Claimant
from mlops_ops.core.registry.releases import ReleaseAction

pytestmark = pytest.mark.slow


@pytest.fixture
def service(mlflow_store):
    from mlflow import MlflowClient

    from mlops_ops.hooks.mlflow import MlflowHook
    from mlops_ops.hooks.storage import PipelineStorage
    from mlops_ops.services.release import ReleaseService
    from mlops_ops.settings import embedded_tracking_uri

    client = MlflowClient(tracking_uri=embedded_tracking_uri())
    client.create_registered_model("churn")
    for _ in range(3):
        client.create_model_version("churn", source=str(mlflow_store / "no-model"))
    client.set_registered_model_alias("churn", "champion", "1")
    return ReleaseService(MlflowHook(), PipelineStorage("churn"))


def who(task: str, run: str = "run-1") -> Claimant:
    return Claimant("churn_training", run, task)


def aliases(service) -> tuple[str | None, str | None]:
    return service.alias("churn", "champion"), service.alias("churn", "challenger")


def test_release_replace_refuse_promote_and_retries(service):
    first = service.start("churn", "2", expected_champion="1", claimant=who("deploy"), strategy="canary")
    assert (first.seq, first.action, first.outcome) == (1, "release", "recorded")
    assert aliases(service) == ("1", "2")
    # a retry of the same task completes its own step and writes nothing new
    again = service.start("churn", "2", expected_champion="1", claimant=who("deploy"), strategy="canary")
    assert (again.seq, again.outcome) == (1, "already_recorded")

    # a second challenger while one is under release replaces it, recorded
    second = service.start(
        "churn", "3", expected_champion="1", claimant=who("deploy", "run-2"), strategy="canary"
    )
    state = service.read()
    assert (second.seq, state.head.doc["replaces"]) == (2, "2")
    assert aliases(service) == ("1", "3")

    # a release against a champion that moved since the gate is refused; nothing changes
    with pytest.raises(ChampionChangedError, match="expected v2, found v1"):
        service.start("churn", "2", expected_champion="2", claimant=who("deploy", "run-3"), strategy="canary")
    assert service.read().next_seq == 3
    assert aliases(service) == ("1", "3")

    # promote: the champion moves through the champion ledger, the challenger alias goes
    release = service.read().open_release
    judge = Claimant("churn_release", "r1", "conclude")
    step = service.conclude("churn", release, promote=True, claimant=judge, reasons=["no guardrail breached"])
    assert (step.action, step.seq, step.outcome) == ("promote", 3, "recorded")
    assert aliases(service) == ("3", None)
    champion_head = service.champion_ledger.read().head
    assert (champion_head.version, champion_head.previous_version, champion_head.action) == (
        "3",
        "1",
        "promote",
    )
    assert champion_head.decision["reasons"] == ["no guardrail breached"]

    # the same task again: its own record is found, nothing new is written
    retried = service.conclude("churn", release, promote=True, claimant=judge, reasons=["x"])
    assert (retried.seq, retried.outcome) == (3, "already_recorded")
    # another task concluding the same (stale) release is refused
    with pytest.raises(ChampionChangedError, match="moved on"):
        service.conclude("churn", release, promote=False, claimant=who("conclude", "r2"), reasons=["late"])
    assert [r.action for r in service.read().records] == [
        ReleaseAction.RELEASE,
        ReleaseAction.RELEASE,
        ReleaseAction.PROMOTE,
    ]


def test_a_promotion_refused_by_the_champion_ledger_becomes_a_rollback(service):
    service.start("churn", "2", expected_champion="1", claimant=who("deploy"), strategy="canary")
    service.hook.set_alias("churn", "champion", "3")  # moved by hand during the bake
    release = service.read().open_release
    step = service.conclude(
        "churn", release, promote=True, claimant=Claimant("churn_release", "r1", "conclude"), reasons=["fine"]
    )
    assert step.action == "rollback"
    assert step.reasons[0].startswith("promotion refused, so the challenger is rolled back")
    assert aliases(service) == ("3", None)  # the champion stays where the human put it
