"""RollbackModelOperator: put an earlier version back as champion, through the same strict CAS."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from mlops_ops.assets import model_asset
from mlops_ops.core.registry import DEFAULT_CLAIM_LEASE_SECONDS
from mlops_ops.hooks.pushgateway import push_metrics
from mlops_ops.links import MlflowModelVersionLink
from mlops_ops.operators.base import MlopsBaseOperator, parse_bool

if TYPE_CHECKING:
    from airflow.sdk import Context


class RollbackModelOperator(MlopsBaseOperator):
    """Move the ``champion`` alias back to an earlier version and record it in the ledger.

    ``version="previous"`` undoes the latest promotion: it resolves, from the deployment ledger, to
    the version that promotion replaced. After that rollback the champion *is* that version, so
    running it again changes nothing and succeeds (``changed: false``); name a version to go
    further back.

    Refuses (fails without retry): a model with no deployment ledger; a version that does not
    exist; a version that never passed a gate (no ``mlops.gate=promote`` tag and no passing
    promotion in the ledger) unless ``force``; an alias that was moved outside mlops-ops unless
    ``force``, which then records the alias as found (this is how a hand-moved alias is
    reconciled). The alias moves through the same ledger-serialised compare-and-set as
    deployments, and a ``rollback`` record is written with ``reason``.

    :param version: ``"previous"`` or a version number (templated).
    :param force: also roll back to a version that never passed a gate, or over an alias moved by
        hand (templated; ``"true"``/``"false"`` strings are accepted).
    :param reason: why, recorded in the ledger record (templated).
    :param claim_lease_seconds: see :class:`~mlops_ops.operators.deploy.DeployModelOperator`.
    """

    template_fields: Sequence[str] = ("version", "force", "reason")
    operator_extra_links = (MlflowModelVersionLink(),)
    ui_color = "#fbeee8"

    def __init__(
        self,
        *,
        version: Any = "previous",
        force: Any = False,
        reason: Any = "",
        claim_lease_seconds: float = DEFAULT_CLAIM_LEASE_SECONDS,
        **kwargs: Any,
    ) -> None:
        if "outlets" not in kwargs and "pipeline" in kwargs:
            kwargs["outlets"] = [model_asset(kwargs["pipeline"])]
        super().__init__(**kwargs)
        self.version = version
        self.force = force
        self.reason = reason
        self.claim_lease_seconds = claim_lease_seconds

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_ops.core import registry
        from mlops_ops.hooks.ledger import DeploymentLedger

        name = self.pipeline
        force = parse_bool(self.force)
        reason = str(self.reason or "").strip() or None
        ledger = DeploymentLedger(self.storage)
        hook = self.mlflow_hook
        requested, state = self._requested(), self._ledger_state(hook, ledger)
        head = state.head
        target, model_version, evidence = self._target(hook, state, requested, force)
        self.log.info(
            "rollback of %s to v%s (asked: %s); gate evidence: %s; ledger head: v%s (seq %s); force=%s",
            name,
            target,
            requested,
            evidence or "none (forced)",
            head.version,
            head.seq,
            force,
        )
        source, decision = self._source_decision(state, target, model_version.tags or {})
        ti = context["ti"]
        try:
            result = hook.promote(
                name,
                target,
                expected=head.version,
                ledger=ledger,
                claimant=registry.Claimant(ti.dag_id, ti.run_id, ti.task_id),
                action="rollback",
                force=force,
                decision=decision,
                evidence_uri=source.doc.get("evidence_uri") if source is not None else None,
                reason=reason,
                extra={"requested": requested, "forced": force, "gate_evidence": evidence},
                lease_seconds=float(self.claim_lease_seconds),
            )
        except registry.PromotionRefusedError as err:
            raise AirflowFailException(f"rollback of {name} to v{target} refused: {err}") from None
        except registry.LedgerError as err:
            raise AirflowFailException(f"the deployment ledger of {name} is unreadable: {err}") from None
        except NotImplementedError as err:  # storage without create-if-absent: no retry can fix it
            raise AirflowFailException(f"rollback of {name} to v{target} impossible: {err}") from None

        message = self._message(target, result)
        push_metrics("champion", name, context, {"version": target, "action": "rollback"})
        self.log.info("%s", message)
        for asset in self.outlets:
            if getattr(asset, "uri", "").endswith("/model"):
                context["outlet_events"][asset].extra = {
                    "version": target,
                    "action": "rollback",
                    "changed": result.changed,
                }
        return {
            "version": target,
            "requested": requested,
            "previous_version": result.previous_version if result.outcome != "already_champion" else None,
            "changed": result.changed,
            "outcome": result.outcome,
            "forced": force,
            "ledger_uri": result.ledger_uri,
            "ledger_seq": result.seq,
            "message": message,
            "model_url": hook.model_version_url(name, target),
        }

    # -- steps -----------------------------------------------------------------------------------

    def _requested(self) -> str:
        """The version asked for: a number, or ``previous``."""
        from mlops_ops.core import registry

        try:
            return registry.parse_version_request(self.version)
        except registry.RollbackRefusedError as err:
            raise AirflowFailException(str(err)) from None

    def _ledger_state(self, hook: Any, ledger: Any) -> Any:
        """The ledger after completing a pending promotion; fails when nothing was ever promoted."""
        from mlops_ops.core import registry

        name = self.pipeline
        try:
            # a promotion that moved the alias but has no record yet is what serves: record it
            # first, so that "previous" and the compare-and-set start from the real champion
            hook.complete_pending(name, ledger)
            state = ledger.read()
        except registry.LedgerError as err:
            raise AirflowFailException(f"the deployment ledger of {name} is unreadable: {err}") from None
        if state.head is None:
            raise AirflowFailException(
                f"{name} has no deployment ledger at {ledger.directory}: mlops-ops never promoted a "
                "version of it, so there is nothing to roll back. Promote one with the training DAG first"
            )
        return state

    def _target(self, hook: Any, state: Any, requested: str, force: bool) -> tuple[str, Any, Any]:
        """The version to serve, its registry entry and its gate evidence (refused without one unless forced)."""
        from mlops_ops.core import registry

        name = self.pipeline
        try:
            target = registry.resolve_previous(state, name) if requested == registry.PREVIOUS else requested
        except registry.RollbackRefusedError as err:
            raise AirflowFailException(str(err)) from None
        model_version = self._model_version(hook, name, target)
        evidence = registry.gate_evidence(target, model_version.tags or {}, state)
        if evidence is None and not force:
            tag = (model_version.tags or {}).get("mlops.gate")
            raise AirflowFailException(
                f"{name} v{target} never passed a gate (its mlops.gate tag is {tag!r} and the ledger "
                "records no passing promotion of it), so it is refused as champion. Choose a version that "
                "passed, or trigger again with force=true to serve it anyway (recorded as forced)"
            )
        return target, model_version, evidence

    @staticmethod
    def _source_decision(state: Any, target: str, tags: dict[str, str]) -> tuple[Any, dict[str, Any]]:
        """The ledger record that last promoted ``target`` (or None) and the gate decision to record."""
        promoted = [r for r in state.records if r.version == target and r.action == "promote"]
        source = promoted[-1] if promoted else None
        if source is not None and source.decision:
            return source, dict(source.decision)
        return source, {"status": tags.get("mlops.gate"), "reasons": [tags.get("mlops.gate_reasons", "")]}

    def _message(self, target: str, result: Any) -> str:
        from mlops_ops.core import registry

        name = self.pipeline
        if result.changed:
            return (
                f"{name} v{target} is champion again (was {registry.describe(result.previous_version)}); "
                f"ledger seq {result.seq}: {result.ledger_uri}"
            )
        if result.outcome == "already_recorded":
            return (
                f"this run already rolled {name} back to v{target} (ledger seq {result.seq}): "
                "nothing new written"
            )
        return (
            f"{name} v{target} is already champion and the ledger agrees (seq {result.seq}): "
            "nothing to do, nothing written"
        )

    @staticmethod
    def _model_version(hook: Any, name: str, version: str) -> Any:
        found = hook.get_version(name, version)
        if found is not None:
            return found
        known = hook.version_numbers(name)
        raise AirflowFailException(
            f"{name} has no version {version} in the MLflow registry at {hook.tracking_uri}; "
            f"its versions are {', '.join('v' + v for v in known) or 'none'}"
        )
