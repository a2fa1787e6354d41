"""DeployModelOperator: move the champion alias (strict compare-and-set) and write the ledger;
ReleaseChallengerOperator: the same step with a release strategy, moving the challenger alias."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from mlops_ops.assets import model_asset
from mlops_ops.core.registry import DEFAULT_CLAIM_LEASE_SECONDS
from mlops_ops.hooks.pushgateway import push_metrics
from mlops_ops.links import MlflowModelVersionLink
from mlops_ops.operators.base import MlopsBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class DeployModelOperator(MlopsBaseOperator):
    """Promote the challenger when the gate said so; otherwise skip with the gate's reasons.

    Promotion is a strict compare-and-set serialised by the write-once deployment ledger: it
    refuses unless the ledger's latest record (and the ``champion`` alias) is the version the gate
    compared against, claims the next ledger sequence number exclusively (so of two concurrent
    promotions only one proceeds), moves the alias, reads it back, writes the record
    ``deployments/<utc>-v<version>.json`` and emits the ``x-mlops://<pipeline>/model`` asset event.
    A retry of this task completes its own earlier attempt. See ``docs/registry.md``.

    :param decision: the evaluation task's result (templated).
    :param claim_lease_seconds: how long another promotion's claim blocks this one when that
        claim's alias move has not happened; after it, the claim counts as abandoned by a crashed
        task.
    """

    template_fields: Sequence[str] = ("decision",)
    operator_extra_links = (MlflowModelVersionLink(),)

    def __init__(
        self,
        *,
        decision: Any,
        claim_lease_seconds: float = DEFAULT_CLAIM_LEASE_SECONDS,
        **kwargs: Any,
    ) -> None:
        if "outlets" not in kwargs and "pipeline" in kwargs:
            kwargs["outlets"] = [model_asset(kwargs["pipeline"])]
        super().__init__(**kwargs)
        self.decision = decision
        self.claim_lease_seconds = claim_lease_seconds

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_ops.core.registry import Claimant, LedgerError, PromotionRefusedError
        from mlops_ops.hooks.ledger import DeploymentLedger

        decision = self.decision
        if not isinstance(decision, dict) or "promote" not in decision:
            raise AirflowFailException(f"decision must be the evaluation task's result, got {decision!r}")
        version = str(decision["challenger_version"])
        baseline = decision.get("baseline_version")
        if not decision["promote"]:
            self.skip(
                f"gate rejected {self.pipeline} v{version}; the champion stays "
                f"{'v' + str(baseline) if baseline else 'unset'}. "
                f"Reasons: {'; '.join(decision.get('reasons') or [])}"
            )
        hook = self.mlflow_hook
        ti = context["ti"]
        try:
            result = hook.promote(
                self.pipeline,
                version,
                expected=None if baseline is None else str(baseline),
                ledger=DeploymentLedger(self.storage),
                claimant=Claimant(ti.dag_id, ti.run_id, ti.task_id),
                action="promote",
                decision={k: decision.get(k) for k in ("status", "reasons", "metrics", "champion_metrics")},
                evidence_uri=decision.get("report_uri"),
                lease_seconds=float(self.claim_lease_seconds),
            )
        except PromotionRefusedError as err:
            raise AirflowFailException(f"promotion of {self.pipeline} v{version} refused: {err}") from None
        except LedgerError as err:
            raise AirflowFailException(
                f"the deployment ledger of {self.pipeline} is unreadable: {err}"
            ) from None
        except NotImplementedError as err:  # storage without create-if-absent: no retry can fix it
            raise AirflowFailException(f"promotion of {self.pipeline} v{version} impossible: {err}") from None

        for asset in self.outlets:
            if getattr(asset, "uri", "").endswith("/model"):
                context["outlet_events"][asset].extra = {"version": version}
        previous = result.previous_version
        push_metrics("champion", self.pipeline, context, {"version": version, "action": "promote"})
        self.log.info(
            "%s v%s is champion (was %s); ledger seq %s at %s (%s)",
            self.pipeline,
            version,
            f"v{previous}" if previous else "none",
            result.seq,
            result.ledger_uri,
            result.outcome.replace("_", " "),
        )
        return {
            "version": version,
            "previous_version": previous,
            "ledger_uri": result.ledger_uri,
            "ledger_seq": result.seq,
            "outcome": result.outcome,
            "model_url": hook.model_version_url(self.pipeline, version),
        }


class ReleaseChallengerOperator(DeployModelOperator):
    """The deploy step with a release strategy: move the ``challenger`` alias, not ``champion``.

    When the gate said *promote*, ``challenger`` is moved to the new version by compare-and-set
    over the release ledger (a ``release`` record, the champion the gate compared against in it),
    and the ``<name>_release`` DAG judges it on live traffic later. A challenger already under
    release is replaced, recorded. With no champion yet there is nothing to release against: the
    version is promoted directly, as with ``strategy: direct``.

    :param decision: the evaluation task's result (templated).
    :param strategy: ``canary``, ``shadow`` or ``ab``.
    """

    template_fields: Sequence[str] = ("decision",)

    def __init__(self, *, decision: Any, strategy: str, **kwargs: Any) -> None:
        super().__init__(decision=decision, **kwargs)
        self.strategy = strategy

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_ops.core.registry import Claimant, PromotionRefusedError
        from mlops_ops.services.release import ReleaseService

        decision = self.decision
        if (
            not isinstance(decision, dict)
            or not decision.get("promote")
            or decision.get("baseline_version") is None
        ):
            return super().execute(context)  # a rejection skips; a first version is promoted directly
        version, baseline = str(decision["challenger_version"]), str(decision["baseline_version"])
        try:
            step = ReleaseService(self.mlflow_hook, self.storage).start(
                self.pipeline,
                version,
                expected_champion=baseline,
                claimant=Claimant(context["ti"].dag_id, context["ti"].run_id, context["ti"].task_id),
                strategy=self.strategy,
                decision={k: decision.get(k) for k in ("status", "reasons", "metrics", "champion_metrics")},
                evidence_uri=decision.get("report_uri"),
            )
        except PromotionRefusedError as err:
            raise AirflowFailException(f"release of {self.pipeline} v{version} refused: {err}") from None
        self.log.info(
            "%s v%s is the challenger (%s) against champion v%s; release ledger seq %s at %s (%s)",
            self.pipeline, version, self.strategy, baseline, step.seq, step.record_uri, step.outcome,
        )  # fmt: skip
        for asset in self.outlets:
            if getattr(asset, "uri", "").endswith("/model"):
                context["outlet_events"][asset].extra = {"version": version, "action": "release"}
        return {
            "version": version,
            "champion_version": baseline,
            "strategy": self.strategy,
            "release_seq": step.seq,
            "ledger_uri": step.record_uri,
            "outcome": step.outcome,
            "model_url": self.mlflow_hook.model_version_url(self.pipeline, version),
        }
