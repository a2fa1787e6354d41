"""Promotion: the champion alias moved by a strict compare-and-set over the deployment ledger.

One service object over the two things a promotion touches: the MLflow registry (through
:class:`~mlops_ops.hooks.mlflow.MlflowHook`) and the write-once ledger
(:class:`~mlops_ops.hooks.ledger.DeploymentLedger`). The rules (what to do given the ledger and
the alias) are in :mod:`mlops_ops.core.registry`; this module carries them out. See
docs/architecture.md, "Deployment ledger", and docs/registry.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops_ops import settings
from mlops_ops.core.registry import DEFAULT_CLAIM_LEASE_SECONDS, ChampionChangedError

if TYPE_CHECKING:
    from mlops_ops.core.registry import Claim, Claimant
    from mlops_ops.hooks.ledger import DeploymentLedger
    from mlops_ops.hooks.mlflow import MlflowHook

__all__ = ["Promotion", "PromotionService"]

#: the hook's logger, as before promotion moved here: log filters and handlers keep working
log = logging.getLogger("mlops_ops.hooks.mlflow")


@dataclass(frozen=True)
class Promotion:
    """What :meth:`PromotionService.promote` did.

    ``outcome`` is ``promoted`` (this call moved the alias), ``resumed`` (it completed this task's
    earlier, interrupted attempt), ``already_recorded`` (an earlier attempt of this task had
    finished) or ``already_champion`` (nothing to do: written nothing).
    """

    version: str
    previous_version: str | None
    seq: int | None
    ledger_uri: str | None
    outcome: str
    rolled_forward: tuple[int, ...] = ()

    @property
    def changed(self) -> bool:
        """This call moved the alias or wrote the record (False: an earlier attempt or nothing to do)."""
        return self.outcome in ("promoted", "resumed")


class PromotionService:
    """Moves ``alias`` of a registered model, recording each move in the deployment ledger.

    :param hook: the MLflow registry.
    :param ledger: the pipeline's deployment ledger.
    :param alias: the alias that serves (default ``champion``).
    """

    def __init__(
        self, hook: MlflowHook, ledger: DeploymentLedger, *, alias: str = settings.CHAMPION_ALIAS
    ) -> None:
        self.hook = hook
        self.ledger = ledger
        self.alias = alias

    def promote(
        self,
        name: str,
        version: str,
        *,
        expected: str | None,
        claimant: Claimant,
        action: str = "promote",
        force: bool = False,
        decision: dict[str, Any] | None = None,
        evidence_uri: str | None = None,
        reason: str | None = None,
        extra: dict[str, Any] | None = None,
        lease_seconds: float = DEFAULT_CLAIM_LEASE_SECONDS,
    ) -> Promotion:
        """Strict compare-and-set of the alias, serialised by the deployment self.ledger.

        Moves ``alias`` to ``version`` only if the ledger's head (and the alias) is ``expected``:
        claims the next ledger sequence number exclusively, moves the alias, reads it back, writes
        the ledger record, tags the version. A retry of the same task instance (``claimant``)
        completes its own claim. ``force`` (rollback only) accepts an alias that was moved outside
        mlops-ops and records it. Raises :class:`ChampionChangedError` or
        :class:`~mlops_ops.core.registry.AliasDivergedError` (both ``PromotionRefusedError``) when
        the alias must not move; nothing is changed then.
        """
        from datetime import UTC, datetime

        from mlops_ops.core import registry

        rolled: list[int] = []
        for _ in range(10):
            state, champion = self._read_consistent(name)
            plan = registry.plan_promotion(
                state,
                alias_version=champion.version if champion is not None else None,
                version=version,
                expected=expected,
                claimant=claimant,
                action=action,
                force=force,
                now=datetime.now(UTC),
                lease_seconds=lease_seconds,
                pipeline=name,
            )
            if plan.kind in ("done", "noop"):
                assert plan.record is not None
                if plan.kind == "done":
                    self.hook.tag_promoted(name, plan.record.doc)
                return Promotion(
                    version=plan.record.version,
                    previous_version=plan.record.previous_version,
                    seq=plan.record.seq or None,
                    ledger_uri=str(self.ledger.record_path(plan.record.name)),
                    outcome="already_recorded" if plan.kind == "done" else "already_champion",
                    rolled_forward=tuple(rolled),
                )
            if plan.kind == "roll_forward":
                assert plan.claim is not None
                log.warning(
                    "%s moved the alias and stopped before writing its ledger record: writing it now",
                    plan.claim,
                )
                self._finish(name, plan.claim)
                rolled.append(plan.claim.seq)
                continue
            if plan.kind == "resume":
                assert plan.claim is not None
                claim, outcome = plan.claim, "resumed"
                log.info("completing this task's earlier attempt: %s", claim)
            else:
                assert plan.seq is not None
                now = datetime.now(UTC)
                record = registry.build_record(
                    pipeline=name,
                    version=registry.normalise_version(version) or str(version),
                    previous_version=plan.previous_version,
                    action=action,
                    seq=plan.seq,
                    deployed_at=now,
                    claimant=claimant,
                    decision=decision,
                    evidence_uri=evidence_uri,
                    reason=reason,
                    extra={
                        **(extra or {}),
                        **({"reconciled": plan.reconciled} if plan.reconciled else {}),
                        **({"superseded_claims": list(plan.superseded)} if plan.superseded else {}),
                    },
                )
                document = registry.build_claim(record=record, alias_before=plan.alias_before, claimed_at=now)
                if not self.ledger.claim(document):
                    log.info(
                        "ledger sequence %s was claimed by another promotion first; re-reading", plan.seq
                    )
                    continue  # the next plan sees the winner's claim and refuses
                claim = registry.parse_claim(registry.claim_file_name(plan.seq), document)
                outcome = "promoted"
                if plan.superseded:
                    log.warning(
                        "claims %s were abandoned (older than the lease, alias never moved): superseded",
                        list(plan.superseded),
                    )
            path = self._move_alias(name, claim)
            return Promotion(
                version=claim.version,
                previous_version=claim.previous_version,
                seq=claim.seq,
                ledger_uri=str(path),
                outcome=outcome,
                rolled_forward=tuple(rolled),
            )
        raise ChampionChangedError(
            f"champion changed since evaluation: the deployment ledger of {name} kept changing while "
            f"promoting v{version}; re-run the evaluation"
        )

    def _read_consistent(self, name: str) -> tuple[Any, Any]:
        """The ledger and the alias as of one moment: the ledger read before and after the alias.

        A promotion claims its ledger sequence before it moves the alias and writes its record
        after, so if the ledger did not change around the alias read, the two belong together.
        Otherwise a promotion was in flight (e.g. its alias move was seen but not yet its claim,
        which would look like an alias moved by hand): read again.
        """
        state = self.ledger.read()
        champion = None
        for _ in range(20):
            champion = self.hook.get_alias_version(name, self.alias)
            again = self.ledger.read()
            if again.fingerprint == state.fingerprint:
                return state, champion
            state = again
        return state, champion

    def _move_alias(self, name: str, claim: Claim) -> Any:
        """Move the alias for a claim this task holds, then record it. Returns the record's path."""
        from mlops_ops.core.registry import describe

        if not self.ledger.read().is_live(claim):
            raise ChampionChangedError(
                f"champion changed since evaluation: {claim} is no longer the live claim (another "
                "promotion superseded it after its lease ran out); nothing was changed"
            )
        current = self.hook.get_alias_version(name, self.alias)
        found = str(current.version) if current is not None else None
        if found != claim.version:
            if found != claim.alias_before:
                self.ledger.release(claim, f"alias found at {describe(found)} before moving it")
                raise ChampionChangedError(
                    f"champion changed since evaluation: expected {describe(claim.alias_before)}, found "
                    f"{describe(found)} (moved outside mlops-ops while promoting v{claim.version}); "
                    "nothing was changed"
                )
            self.hook.set_alias(name, self.alias, claim.version)
            after = self.hook.get_alias_version(name, self.alias)
            now_at = str(after.version) if after is not None else None
            if now_at != claim.version:
                self.ledger.release(claim, f"alias read back as {describe(now_at)}")
                raise ChampionChangedError(
                    f"champion changed while promoting v{claim.version}: the alias was moved to "
                    f"{describe(now_at)} by someone else at the same moment; no ledger record was written"
                )
        state = self.ledger.read()
        if not state.is_live(claim) and state.record_with_seq(claim.seq) is None:
            raise ChampionChangedError(
                f"{claim} was superseded while this task was paused past its lease, after it had moved "
                f"the alias to v{claim.version}. The alias and the ledger now disagree: run the "
                f"{name}_rollback DAG with force=true to record which version should serve"
            )
        return self._finish(name, claim)

    def _finish(self, name: str, claim: Claim) -> Any:
        path = self.ledger.write_record(claim)
        self.hook.tag_promoted(name, claim.record)
        return path

    def complete_pending(self, name: str) -> list[int]:
        """Write the record of a claim whose alias move happened but whose task stopped before
        recording it (the same record its claimant would write). Returns the seqs completed."""
        done = []
        for _ in range(10):
            live = self.ledger.read().live_claim
            champion = self.hook.get_alias_version(name, self.alias)
            if live is None or champion is None or str(champion.version) != live.version:
                break
            log.warning("%s moved the alias without a ledger record yet: writing it", live)
            self._finish(name, live)
            done.append(live.seq)
        return done
