"""Releases: the ``challenger`` alias moved by compare-and-set over the release ledger, and the
champion moved (promotion, watch rollback) through the champion's own ledger.

The rules (phases, the bake) are in :mod:`mlops_ops.core.registry.releases`; the judge is
:mod:`mlops_ops.core.release`; this module carries the steps out. Every step writes its ledger
record first (created exclusively: a second writer is refused) and then moves the alias, so a
crashed step is completed by the next run. See docs/releases.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlops_ops import settings
from mlops_ops.core.registry import ChampionChangedError, PromotionRefusedError, describe, normalise_version
from mlops_ops.core.registry.releases import (
    CHALLENGER_ALIAS,
    ReleaseAction,
    ReleaseRecord,
    build_release_record,
)

if TYPE_CHECKING:
    from mlops_ops.core.registry import Claimant
    from mlops_ops.core.registry.releases import ReleaseState
    from mlops_ops.hooks.mlflow import MlflowHook
    from mlops_ops.hooks.storage import PipelineStorage

__all__ = ["ReleaseService", "ReleaseStep"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReleaseStep:
    """What a release step did: ``action`` recorded under ``seq`` at ``record_uri``.

    ``outcome``: ``recorded`` (this call wrote the record) or ``already_recorded`` (a retry found
    its own record and only completed the alias move).
    """

    action: str
    version: str
    champion_version: str | None
    seq: int
    record_uri: str
    outcome: str
    reasons: tuple[str, ...] = ()


class ReleaseService:
    """The steps of a release for one pipeline.

    :param hook: the MLflow registry.
    :param storage: the pipeline's storage (both ledgers live under ``deployments/``).
    """

    def __init__(self, hook: MlflowHook, storage: PipelineStorage) -> None:
        from mlops_ops.hooks.ledger import DeploymentLedger, ReleaseLedger

        self.hook = hook
        self.ledger = ReleaseLedger(storage)
        self.champion_ledger = DeploymentLedger(storage)

    def read(self) -> ReleaseState:
        return self.ledger.read()

    def alias(self, name: str, alias: str) -> str | None:
        found = self.hook.get_alias_version(name, alias)
        return str(found.version) if found is not None else None

    # -- start -----------------------------------------------------------------------------------

    def start(
        self,
        name: str,
        version: str,
        *,
        expected_champion: str,
        claimant: Claimant,
        strategy: str,
        decision: dict[str, Any] | None = None,
        evidence_uri: str | None = None,
    ) -> ReleaseStep:
        """Make ``version`` the challenger against ``expected_champion``.

        A challenger already under release is replaced (the record names it in ``replaces``).
        Raises :class:`ChampionChangedError` when the champion is not ``expected_champion`` or
        another release took the ledger's next sequence first; nothing is changed then.
        """
        version = normalise_version(version) or str(version)
        expected = normalise_version(expected_champion)
        for _ in range(5):
            state = self.ledger.read()
            head = state.head
            if head is not None and head.version == version and head.claimant == claimant:
                if head.action is ReleaseAction.RELEASE:  # a retry of this task: complete it
                    self._set_challenger(name, version)
                    return self._step(head, "already_recorded")
            champion = self.alias(name, settings.CHAMPION_ALIAS)
            if champion != expected:
                raise ChampionChangedError(
                    f"champion changed since evaluation: expected {describe(expected)}, found "
                    f"{describe(champion)}; re-run the evaluation against the new champion"
                )
            if champion == version:
                raise PromotionRefusedError(f"{name} v{version} is already the champion: nothing to release")
            open_release = state.open_release
            found = self.alias(name, CHALLENGER_ALIAS)
            doc = build_release_record(
                pipeline=name,
                seq=state.next_seq,
                action=ReleaseAction.RELEASE,
                version=version,
                champion_version=champion,
                at=datetime.now(UTC),
                claimant=claimant,
                reasons=list((decision or {}).get("reasons") or []),
                strategy=strategy,
                decision=decision,
                evidence_uri=evidence_uri,
                replaces=open_release.version if open_release is not None else None,
                challenger_alias_found=found,
            )
            if self.ledger.append(doc):
                if open_release is not None:
                    log.warning("v%s replaces v%s, which was under release", version, open_release.version)
                self._set_challenger(name, version)
                return self._step(self.ledger.read().head, "recorded")
            log.info("release ledger sequence %s was taken by another writer first; re-reading", doc["seq"])
        raise ChampionChangedError(f"the release ledger of {name} kept changing while releasing v{version}")

    def _set_challenger(self, name: str, version: str) -> None:
        self.hook.set_alias(name, CHALLENGER_ALIAS, version)
        after = self.alias(name, CHALLENGER_ALIAS)
        if after != version:
            raise ChampionChangedError(
                f"the {CHALLENGER_ALIAS} alias of {name} was moved to {describe(after)} by someone else "
                f"while setting it to v{version}"
            )

    # -- conclude --------------------------------------------------------------------------------

    def conclude(
        self,
        name: str,
        release: ReleaseRecord,
        *,
        promote: bool,
        claimant: Claimant,
        reasons: list[str],
        judgement: dict[str, Any] | None = None,
        report_uri: str | None = None,
    ) -> ReleaseStep:
        """Promote the challenger (champion := challenger, then delete ``challenger``) or roll it
        back (delete ``challenger``; the champion never changes), recording why.

        A promotion whose champion compare-and-set is refused (the champion moved during the bake)
        becomes a rollback with that reason. Raises :class:`ChampionChangedError` when the release
        is no longer the ledger's head (another step concluded or replaced it).
        """
        own = self._own_step(release, claimant)
        if own is not None:
            self._withdraw(name, release.version)
            return self._step(own, "already_recorded")
        extra: dict[str, Any] = {}
        action = ReleaseAction.ROLLBACK
        if promote:
            try:
                extra = self._move_champion(
                    name, release.version, expected=release.champion_version, claimant=claimant,
                    action="promote", reasons=reasons, seq=release.seq, report_uri=report_uri,
                    reason=f"release judged on live traffic ({release.doc.get('strategy')})",
                )  # fmt: skip
                action = ReleaseAction.PROMOTE
            except PromotionRefusedError as err:
                reasons = [f"promotion refused, so the challenger is rolled back: {err}", *reasons]
        step = self._record(
            name, release, action, release.version, release.champion_version, claimant, reasons,
            judgement=judgement, report_uri=report_uri, release_seq=release.seq, **extra,
        )  # fmt: skip
        self._withdraw(name, release.version)
        return step

    def _withdraw(self, name: str, version: str) -> None:
        if self.alias(name, CHALLENGER_ALIAS) == version:
            self.hook.delete_alias(name, CHALLENGER_ALIAS)

    # -- watch -----------------------------------------------------------------------------------

    def end_watch(
        self,
        name: str,
        promoted: ReleaseRecord,
        *,
        rollback: bool,
        claimant: Claimant,
        reasons: list[str],
        judgement: dict[str, Any] | None = None,
        report_uri: str | None = None,
        ended: bool = False,
    ) -> ReleaseStep:
        """Close the watch window of ``promoted``: passed, ended (the champion moved elsewhere), or
        rolled back to the champion it replaced, through the champion ledger's rollback path."""
        own = self._own_step(promoted, claimant)
        if own is not None:
            return self._step(own, "already_recorded")
        extra: dict[str, Any] = {}
        action = ReleaseAction.WATCH_ENDED if ended else ReleaseAction.WATCH_PASSED
        if rollback:
            if promoted.champion_version is None:
                raise PromotionRefusedError(
                    f"v{promoted.version} replaced no champion: nothing to roll back to"
                )
            extra = self._move_champion(
                name, promoted.champion_version, expected=promoted.version, claimant=claimant,
                action="rollback", reasons=reasons, seq=promoted.seq, report_uri=report_uri,
                reason=f"watch window after the promotion of v{promoted.version}: a guardrail breached",
            )  # fmt: skip
            action = ReleaseAction.WATCH_ROLLBACK
        return self._record(
            name, promoted, action, promoted.version, promoted.champion_version, claimant, reasons,
            judgement=judgement, report_uri=report_uri, **extra,
        )  # fmt: skip

    def _move_champion(
        self,
        name: str,
        version: str,
        *,
        expected: str | None,
        claimant: Claimant,
        action: str,
        reasons: list[str],
        seq: int,
        report_uri: str | None,
        reason: str,
    ) -> dict[str, Any]:
        """Move ``champion`` through the champion ledger's compare-and-set (the path of deploy and
        rollback); returns what the release record says about it."""
        result = self.hook.promote(
            name,
            version,
            expected=expected,
            ledger=self.champion_ledger,
            claimant=claimant,
            action=action,
            decision={"status": action, "reasons": reasons, "release_seq": seq},
            evidence_uri=report_uri,
            reason=reason,
        )
        return {"champion_ledger_uri": result.ledger_uri, "champion_ledger_seq": result.seq}

    # -- records ---------------------------------------------------------------------------------

    def _own_step(self, after: ReleaseRecord, claimant: Claimant) -> ReleaseRecord | None:
        """The record this task already wrote after ``after`` (a retry), or None.

        Raises :class:`ChampionChangedError` when someone else wrote past ``after``."""
        head = self.ledger.read().head
        if head is None or head.seq == after.seq:
            return None
        if head.seq == after.seq + 1 and head.claimant == claimant and head.version == after.version:
            return head
        raise ChampionChangedError(
            f"the release ledger moved on since {after.action} v{after.version} (seq {after.seq}) was read: "
            f"its head is now {head.action} v{head.version} (seq {head.seq}); nothing was changed"
        )

    def _record(
        self,
        name: str,
        after: ReleaseRecord,
        action: ReleaseAction,
        version: str,
        champion_version: str | None,
        claimant: Claimant,
        reasons: list[str],
        **extra: Any,
    ) -> ReleaseStep:
        doc = build_release_record(
            pipeline=name,
            seq=after.seq + 1,
            action=action,
            version=version,
            champion_version=champion_version,
            at=datetime.now(UTC),
            claimant=claimant,
            reasons=reasons,
            **extra,
        )
        if not self.ledger.append(doc):
            own = self._own_step(after, claimant)
            if own is None:  # pragma: no cover - append refused but nobody wrote: a store fault
                raise ChampionChangedError(f"release ledger seq {doc['seq']} could not be written")
            return self._step(own, "already_recorded")
        head = self.ledger.read().head
        assert head is not None
        return self._step(head, "recorded")

    def _step(self, record: ReleaseRecord | None, outcome: str) -> ReleaseStep:
        assert record is not None
        return ReleaseStep(
            action=record.action.value,
            version=record.version,
            champion_version=record.champion_version,
            seq=record.seq,
            record_uri=str(self.ledger.record_path(record.seq)),
            outcome=outcome,
            reasons=tuple(record.doc.get("reasons") or ()),
        )
