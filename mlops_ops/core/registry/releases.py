"""The release ledger: the history of the ``challenger`` alias, and what a release does next.

Next to the champion's ledger (``deployments/``), each pipeline with a release strategy keeps
``deployments/releases/<seq:08d>.json``: one write-once record per step of a release. A record
is created exclusively under the next sequence number, so of two writers (two training runs
releasing at once, a release DAG run and a retry) only one takes a step; the other re-reads and
is refused. This is the compare-and-set of the challenger alias: the alias is moved only after
its record was created.

Actions, in the order a release takes them:

* ``release``: ``version`` became the challenger, against champion ``champion_version``
  (a second release while one is open replaces it: the record names it in ``replaces``);
* ``promote`` (the champion alias moved through the champion's ledger) or ``rollback`` (the
  challenger was withdrawn; the champion never moved), each with the judge's reasons;
* after a promotion with a watch window: ``watch_passed``, ``watch_rollback`` (the champion was
  rolled back to ``champion_version``, the one the promotion replaced) or ``watch_ended`` (the
  champion moved outside the release).

This module is pure: documents in, decisions out.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from mlops_ops.core.registry.ledger import Claimant, LedgerError, normalise_version

#: The registered-model alias of the version under release (the serving process routes to it).
CHALLENGER_ALIAS = "challenger"
#: Folder of the release ledger, under the champion ledger's ``deployments/``.
RELEASES_DIR = "releases"
RELEASE_SCHEMA = "mlops-ops/release-record/v1"
_NAME = re.compile(r"^(\d{8})\.json$")


class ReleaseAction(StrEnum):
    RELEASE = "release"
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    WATCH_PASSED = "watch_passed"
    WATCH_ROLLBACK = "watch_rollback"
    WATCH_ENDED = "watch_ended"


class ReleasePhase(StrEnum):
    """Where a pipeline's release stands."""

    IDLE = "idle"  # no challenger
    BAKING = "baking"  # a challenger takes traffic, not yet judged
    WATCHING = "watching"  # promoted; the watch window is open


def release_record_name(seq: int) -> str:
    return f"{int(seq):08d}.json"


def release_record_seq(name: str) -> int | None:
    match = _NAME.match(name)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class ReleaseRecord:
    """One step of a release (see the module's docstring); ``doc`` is the stored document."""

    seq: int
    action: ReleaseAction
    version: str
    champion_version: str | None
    at: dt.datetime
    doc: Mapping[str, Any]

    @property
    def name(self) -> str:
        return release_record_name(self.seq)

    @property
    def claimant(self) -> Claimant:
        return Claimant.from_doc(self.doc)


def build_release_record(
    *,
    pipeline: str,
    seq: int,
    action: ReleaseAction | str,
    version: str,
    champion_version: str | None,
    at: dt.datetime,
    claimant: Claimant,
    reasons: Iterable[str] = (),
    **extra: Any,
) -> dict[str, Any]:
    """A release record. ``extra`` holds the strategy, the judgement summary, the report URI..."""
    if seq < 1:
        raise LedgerError(f"seq must be >= 1, got {seq}")
    if at.tzinfo is None:
        raise LedgerError("at must be timezone-aware (UTC)")
    return {
        "schema": RELEASE_SCHEMA,
        "seq": int(seq),
        "pipeline": pipeline,
        "action": ReleaseAction(action).value,
        "version": str(version),
        "champion_version": None if champion_version is None else str(champion_version),
        "at": at.astimezone(dt.UTC).isoformat(),
        "reasons": list(reasons),
        **claimant.fields(),
        **extra,
    }


def parse_release_record(name: str, doc: Any) -> ReleaseRecord:
    """Read a stored record; raises :class:`LedgerError` naming the file when it is malformed."""
    seq = release_record_seq(name)
    try:
        if seq is None or not isinstance(doc, Mapping) or int(doc["seq"]) != seq:
            raise ValueError(f"the name must be <seq:08d>.json and match its seq, got {name}")
        at = dt.datetime.fromisoformat(str(doc["at"]))
        if at.tzinfo is None:
            raise ValueError("'at' has no time zone")
        return ReleaseRecord(
            seq=seq,
            action=ReleaseAction(doc["action"]),
            version=normalise_version(doc["version"]) or str(doc["version"]),
            champion_version=normalise_version(doc.get("champion_version")),
            at=at,
            doc=doc,
        )
    except (KeyError, TypeError, ValueError) as err:
        raise LedgerError(
            f"release ledger record {name} is malformed ({err}); the release ledger is damaged"
        ) from None


@dataclass(frozen=True)
class ReleaseState:
    """The release ledger as read: its records, oldest first."""

    records: tuple[ReleaseRecord, ...] = ()

    @classmethod
    def build(cls, records: Iterable[ReleaseRecord]) -> ReleaseState:
        return cls(tuple(sorted(records, key=lambda r: r.seq)))

    @property
    def head(self) -> ReleaseRecord | None:
        return self.records[-1] if self.records else None

    @property
    def next_seq(self) -> int:
        return (self.head.seq if self.head else 0) + 1

    @property
    def open_release(self) -> ReleaseRecord | None:
        """The ``release`` record of the challenger under release, if one is."""
        head = self.head
        return head if head is not None and head.action is ReleaseAction.RELEASE else None

    def release_of(self, record: ReleaseRecord) -> ReleaseRecord | None:
        """The ``release`` record a later step concluded (the newest release before it)."""
        for r in reversed(self.records):
            if r.seq < record.seq and r.action is ReleaseAction.RELEASE and r.version == record.version:
                return r
        return None

    def phase(self, now: dt.datetime, watch_minutes: int) -> ReleasePhase:
        head = self.head
        if head is None:
            return ReleasePhase.IDLE
        if head.action is ReleaseAction.RELEASE:
            return ReleasePhase.BAKING
        if head.action is ReleaseAction.PROMOTE and watch_minutes > 0:
            return ReleasePhase.WATCHING
        return ReleasePhase.IDLE

    def watch_ends(self, watch_minutes: int) -> dt.datetime | None:
        head = self.head
        if head is None or head.action is not ReleaseAction.PROMOTE:
            return None
        return head.at + dt.timedelta(minutes=watch_minutes)


@dataclass(frozen=True)
class BakeStatus:
    """Whether the bake of an open release is over: both the time and the requests per arm."""

    over: bool
    reason: str


def bake_status(
    release: ReleaseRecord,
    *,
    now: dt.datetime,
    minutes: int,
    min_requests: int,
    champion_requests: int,
    challenger_requests: int,
) -> BakeStatus:
    """The bake is over when ``minutes`` have passed since the release and each arm answered
    (shadow: scored) ``min_requests`` requests."""
    ends = release.at + dt.timedelta(minutes=minutes)
    if now < ends:
        left = (ends - now).total_seconds() / 60
        return BakeStatus(
            False, f"the bake of v{release.version} ends at {ends:%Y-%m-%dT%H:%M:%SZ} ({left:.1f} min left)"
        )
    short = [
        f"{arm} {count}/{min_requests}"
        for arm, count in (("champion", champion_requests), ("challenger", challenger_requests))
        if count < min_requests
    ]
    if short:
        return BakeStatus(False, f"too few requests per arm to judge v{release.version}: {', '.join(short)}")
    return BakeStatus(
        True, f"bake over: {minutes} min and {champion_requests}/{challenger_requests} requests"
    )
