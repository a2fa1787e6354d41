"""The deployment ledger's records: their layout, how they are built and read, the version
numbers they name, and the errors of the ledger and of promotion."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlops_ops.errors import MlopsError, StoredDocumentError

#: Version of the ledger record layout (records written before ``seq`` existed have none).
RECORD_SCHEMA = 1

ACTIONS = ("promote", "rollback")

#: A claim older than this whose alias move never happened is treated as abandoned.
DEFAULT_CLAIM_LEASE_SECONDS = 600.0

PREVIOUS = "previous"

_VERSION = re.compile(r"^[vV]?([0-9]+)$")
_LINEAGE_KEYS = ("airflow.dag_id", "airflow.run_id", "airflow.task_id")


# -- errors ---------------------------------------------------------------------------------------


class LedgerError(StoredDocumentError):
    """A ledger record or claim that cannot be read as one."""


class PromotionRefusedError(MlopsError, ValueError):
    """The alias must not move: the evidence behind the promotion no longer holds."""


class ChampionChangedError(PromotionRefusedError):
    """The champion is not (or is no longer) the version the promotion was evaluated against."""


class AliasDivergedError(PromotionRefusedError):
    """The alias points elsewhere than the ledger's head: it was moved outside mlops-ops."""


class RollbackRefusedError(MlopsError, ValueError):
    """A rollback target that must not serve (unknown, never gated, or no ledger to go by)."""


# -- small value types ------------------------------------------------------------------------------


def normalise_version(value: Any) -> str | None:
    """A registry version as a string (``3``, ``"3"`` and ``"v3"`` -> ``"3"``); None stays None."""
    if value is None:
        return None
    text = str(value).strip()
    match = _VERSION.match(text)
    if not match:
        return text
    return match.group(1).lstrip("0") or "0"


def describe(version: str | None) -> str:
    return "no champion" if version is None else f"v{version}"


@dataclass(frozen=True)
class Claimant:
    """The Airflow task instance behind a claim or record: a retry of it is the same claimant."""

    dag_id: str | None
    run_id: str | None
    task_id: str | None

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Claimant:
        return cls(doc.get("airflow.dag_id"), doc.get("airflow.run_id"), doc.get("airflow.task_id"))

    def fields(self) -> dict[str, str | None]:
        return dict(zip(_LINEAGE_KEYS, (self.dag_id, self.run_id, self.task_id), strict=True))

    def __str__(self) -> str:
        return f"{self.dag_id}/{self.run_id}/{self.task_id}"


def record_name(version: str, at: dt.datetime) -> str:
    """``<utc-timestamp>-v<version>.json``, the ledger record's file name.

    See docs/architecture.md, "Deployment ledger and claims".
    """
    return f"{at.astimezone(dt.UTC).strftime('%Y%m%dT%H%M%S.%fZ')}-v{version}.json"


def build_record(
    *,
    pipeline: str,
    version: str,
    previous_version: str | None,
    action: str,
    seq: int,
    deployed_at: dt.datetime,
    claimant: Claimant,
    decision: Mapping[str, Any] | None = None,
    evidence_uri: str | None = None,
    reason: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One ledger record. ``decision`` is the gate decision that justified it (status, reasons, metrics)."""
    if action not in ACTIONS:
        raise LedgerError(f"action must be one of {list(ACTIONS)}, got {action!r}")
    if seq < 1:
        raise LedgerError(f"seq must be >= 1, got {seq}")
    if deployed_at.tzinfo is None:
        raise LedgerError("deployed_at must be timezone-aware (UTC)")
    return {
        "schema": RECORD_SCHEMA,
        "seq": int(seq),
        "pipeline": pipeline,
        "model_name": pipeline,
        "version": str(version),
        "previous_version": None if previous_version is None else str(previous_version),
        "action": action,
        "decision": dict(decision) if decision is not None else None,
        "evidence_uri": evidence_uri,
        "reason": reason,
        "deployed_at": deployed_at.astimezone(dt.UTC).isoformat(),
        **claimant.fields(),
        **dict(extra or {}),
    }


@dataclass(frozen=True)
class LedgerRecord:
    """A record as read back. ``seq`` is 0 for records written before sequence numbers existed."""

    name: str
    seq: int
    version: str
    previous_version: str | None
    action: str
    claimant: Claimant
    doc: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def sort_key(self) -> tuple[int, str]:
        return (self.seq, self.name)

    @property
    def decision(self) -> Mapping[str, Any]:
        value = self.doc.get("decision")
        return value if isinstance(value, Mapping) else {}


def parse_record(name: str, doc: Any) -> LedgerRecord:
    """Read one ledger document; raises :class:`LedgerError` naming the file and the field."""
    if not isinstance(doc, Mapping):
        raise LedgerError(f"ledger record {name}: expected a JSON object, got {type(doc).__name__}")
    version = normalise_version(doc.get("version"))
    if not version:
        raise LedgerError(f"ledger record {name}: no 'version'")
    seq = doc.get("seq", 0)
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise LedgerError(f"ledger record {name}: 'seq' must be a non-negative integer, got {seq!r}")
    action = doc.get("action", "promote")
    if action not in ACTIONS:
        raise LedgerError(f"ledger record {name}: 'action' must be one of {list(ACTIONS)}, got {action!r}")
    return LedgerRecord(
        name=name,
        seq=seq,
        version=version,
        previous_version=normalise_version(doc.get("previous_version")),
        action=action,
        claimant=Claimant.from_doc(doc),
        doc=doc,
    )
