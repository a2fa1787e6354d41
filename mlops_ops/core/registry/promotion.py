"""The rules over the ledger: its state (head, open claims), the plan of a promotion, which
version a rollback goes back to, and the gate evidence a rollback target needs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from mlops_ops.core.registry.claims import Claim
from mlops_ops.core.registry.ledger import (
    _VERSION,
    DEFAULT_CLAIM_LEASE_SECONDS,
    PREVIOUS,
    AliasDivergedError,
    ChampionChangedError,
    Claimant,
    LedgerError,
    LedgerRecord,
    RollbackRefusedError,
    describe,
    normalise_version,
)


@dataclass(frozen=True)
class LedgerState:
    """Records (oldest first), claims and released claims of one pipeline's ledger."""

    records: tuple[LedgerRecord, ...] = ()
    claims: tuple[Claim, ...] = ()
    released: frozenset[int] = frozenset()

    @classmethod
    def build(
        cls,
        records: Iterable[LedgerRecord] = (),
        claims: Iterable[Claim] = (),
        released: Iterable[int] = (),
    ) -> LedgerState:
        ordered = tuple(sorted(records, key=lambda r: r.sort_key))
        seqs = [r.seq for r in ordered if r.seq > 0]
        if len(seqs) != len(set(seqs)):
            dupes = sorted({s for s in seqs if seqs.count(s) > 1})
            names = [r.name for r in ordered if r.seq in dupes]
            raise LedgerError(f"ledger records share a sequence number {dupes}: {names}")
        return cls(ordered, tuple(sorted(claims, key=lambda c: c.seq)), frozenset(released))

    @property
    def head(self) -> LedgerRecord | None:
        """The latest record: the highest ``seq`` (records without one come first, by name)."""
        return self.records[-1] if self.records else None

    @property
    def head_seq(self) -> int:
        return self.head.seq if self.head is not None else 0

    @property
    def next_seq(self) -> int:
        """The sequence number the next claim takes: above every record and every claim."""
        return max([self.head_seq, *(c.seq for c in self.claims)]) + 1

    @property
    def pending(self) -> tuple[Claim, ...]:
        """Claims above the head that are neither recorded nor released, oldest first."""
        recorded = {r.seq for r in self.records}
        return tuple(
            c
            for c in self.claims
            if c.seq > self.head_seq and c.seq not in recorded and c.seq not in self.released
        )

    @property
    def live_claim(self) -> Claim | None:
        """The newest pending claim; older pending ones were abandoned and superseded."""
        pending = self.pending
        return pending[-1] if pending else None

    @property
    def fingerprint(self) -> tuple[Any, ...]:
        """What identifies this state: two reads with equal fingerprints saw the same ledger."""
        return (tuple(r.name for r in self.records), tuple(c.seq for c in self.claims), self.released)

    def is_live(self, claim: Claim) -> bool:
        """``claim`` is still the one promotion allowed to move the alias.

        The live claim must be this very claim (same claimant, version and action), not only the
        same seq: a store that let a second writer replace a claim file must not let both move it.
        """
        live = self.live_claim
        return (
            live is not None
            and live.seq == claim.seq
            and live.is_for(claim.claimant, claim.version, claim.action)
        )

    def record_with_seq(self, seq: int) -> LedgerRecord | None:
        return next((r for r in self.records if r.seq == seq), None)

    def record_by(self, claimant: Claimant, version: str, action: str) -> LedgerRecord | None:
        """The latest record this task instance wrote for ``version`` (a retry finds its own)."""
        hits = [
            r for r in self.records if r.claimant == claimant and r.version == version and r.action == action
        ]
        return hits[-1] if hits else None


# -- promotion --------------------------------------------------------------------------------------

PlanKind = Literal["done", "noop", "resume", "roll_forward", "claim"]


@dataclass(frozen=True)
class PromotionPlan:
    """What a promotion does next.

    * ``done``: this task instance already recorded this promotion (a retry after the record).
    * ``noop``: the version is already champion and the ledger agrees: write nothing.
    * ``resume``: this task instance holds the live claim (a retry): complete it.
    * ``roll_forward``: another task's claim moved the alias but has no record yet (it died, or is
      about to write it), and this promotion was evaluated against that version: write the
      claim's record (the same bytes its claimant would write), then plan again.
    * ``claim``: take sequence ``seq``; the alias is expected at ``alias_before``.
    """

    kind: PlanKind
    seq: int | None = None
    previous_version: str | None = None
    alias_before: str | None = None
    claim: Claim | None = None
    record: LedgerRecord | None = None
    superseded: tuple[int, ...] = ()
    reconciled: dict[str, str | None] | None = None


def plan_promotion(
    state: LedgerState,
    *,
    alias_version: Any,
    version: Any,
    expected: Any,
    claimant: Claimant,
    action: str = "promote",
    force: bool = False,
    now: dt.datetime,
    lease_seconds: float = DEFAULT_CLAIM_LEASE_SECONDS,
    pipeline: str = "the pipeline",
) -> PromotionPlan:
    """Decide how to move the alias to ``version``, given it was justified against ``expected``.

    Raises :class:`ChampionChangedError` when the champion is not ``expected`` (or another
    promotion holds the live claim), and :class:`AliasDivergedError` when the alias and the
    ledger's head disagree (unless ``force``, which records the alias as found).
    """
    version_s = normalise_version(version)
    if not version_s:
        raise ValueError(f"version must be a registry version number, got {version!r}")
    alias = normalise_version(alias_version)
    expected_s = normalise_version(expected)

    own = state.record_by(claimant, version_s, action)
    if own is not None and (action == "promote" or (own is state.head and alias == own.version)):
        # a retry (or a re-run) of the task that already recorded this: a deployment happens once
        # per task; a rollback again only if something was promoted since
        return PromotionPlan("done", seq=own.seq, previous_version=own.previous_version, record=own)

    superseded: tuple[int, ...] = ()
    live = state.live_claim
    if live is not None:
        if live.is_for(claimant, version_s, action):
            return PromotionPlan(
                "resume",
                seq=live.seq,
                previous_version=live.previous_version,
                alias_before=live.alias_before,
                claim=live,
            )
        if alias == live.version:
            if not force and expected_s != live.version:
                # the champion changed whether or not that claimant lives to write its record
                raise ChampionChangedError(
                    f"champion changed since evaluation: expected {describe(expected_s)}, found "
                    f"v{live.version} (promoted by {live}, another promotion still in progress: its ledger "
                    "record is being written); re-run the evaluation against the new champion"
                )
            return PromotionPlan("roll_forward", seq=live.seq, claim=live)
        age = (now - live.claimed_at).total_seconds()
        if age < lease_seconds:
            expires = live.claimed_at + dt.timedelta(seconds=lease_seconds)
            raise ChampionChangedError(
                f"champion changed since evaluation: expected {describe(expected_s)}, but another "
                f"promotion holds the champion: {live} is in progress (moving the alias to "
                f"v{live.version}); re-run the evaluation against the new champion once it completes. "
                f"A claim left by a crashed task counts as abandoned from {expires:%Y-%m-%dT%H:%M:%S}Z"
            )
        superseded = tuple(c.seq for c in state.pending)

    head = state.head
    reconciled = None
    if head is not None and alias != head.version:
        if not force:
            raise AliasDivergedError(
                f"the champion alias of {pipeline} {'is not set' if alias is None else 'points at v' + alias} "
                "but the deployment ledger's "
                f"latest record ({head.name}, seq {head.seq}) says v{head.version}: the alias was moved "
                f"outside mlops-ops. Nothing was changed. To reconcile, run the {pipeline}_rollback DAG "
                f"with force=true and version={alias or head.version} (keep what serves now) or "
                f"version={head.version} (return to the ledger's champion); it records the change in the "
                "ledger, after which promotions work again"
            )
        reconciled = {"ledger_head": head.version, "alias_found": alias}
    current = alias
    if head is not None and alias == head.version and version_s == alias:
        return PromotionPlan("noop", seq=head.seq, previous_version=head.previous_version, record=head)
    if not force and current != expected_s:
        raise ChampionChangedError(
            f"champion changed since evaluation: expected {describe(expected_s)}, found {describe(current)}; "
            "re-run the evaluation against the new champion"
        )
    previous = current
    if version_s == alias:  # the alias was already moved here by hand: record the ledger's view
        previous = head.version if head is not None else None
    return PromotionPlan(
        "claim",
        seq=state.next_seq,
        previous_version=previous,
        alias_before=alias,
        superseded=superseded,
        reconciled=reconciled,
    )


# -- rollback ---------------------------------------------------------------------------------------


def parse_version_request(value: Any) -> str:
    """``"previous"`` or a version number (``3``, ``"3"``, ``"v3"``); anything else is an error."""
    text = "" if value is None else str(value).strip()
    if text.lower() in (PREVIOUS, ""):
        return PREVIOUS
    match = _VERSION.match(text)
    if not match:
        raise RollbackRefusedError(
            f"version must be 'previous' or a registered version number such as '3', got {value!r}"
        )
    return normalise_version(match.group(1)) or PREVIOUS


def resolve_previous(state: LedgerState, pipeline: str = "the pipeline") -> str:
    """The version the latest promotion replaced: "undo the last promotion".

    After that rollback the champion *is* this version, so asking for ``previous`` again resolves
    to the champion and changes nothing (rollbacks never walk further back on their own; name a
    version to go further).
    """
    if not state.records:
        raise RollbackRefusedError(
            f"{pipeline} has no deployment ledger: nothing was deployed to roll back from"
        )
    promotions = [r for r in state.records if r.action == "promote"]
    if not promotions:
        raise RollbackRefusedError(
            f"the ledger of {pipeline} records no promotion, so there is no 'previous' version; "
            "name the version to roll back to"
        )
    last = promotions[-1]
    if last.previous_version is None:
        raise RollbackRefusedError(
            f"v{last.version} was the first champion of {pipeline} ({last.name}): there is no previous "
            "version to roll back to"
        )
    return last.previous_version


def gate_evidence(version: str, tags: Mapping[str, str] | None, state: LedgerState) -> str | None:
    """Why ``version`` counts as having passed a gate, or None if nothing on record says so.

    Either the version's ``mlops.gate`` tag is ``promote``, or the ledger holds a promotion of it
    whose decision passed. (The tag alone is not enough: re-evaluating the serving version
    re-tags it ``reject``, "already the champion"; its ledger record still counts.)
    """
    version = normalise_version(version) or version
    for record in reversed(state.records):
        if record.version == version and record.action == "promote":
            if record.decision.get("status") == "promote":
                return f"ledger record {record.name} (seq {record.seq}): promoted by a passing gate decision"
    tag = (tags or {}).get("mlops.gate")
    if tag == "promote":
        return "model version tag mlops.gate=promote"
    return None
