"""Promotion claims: ``deployments/claims/<seq:08d>.json``, created exclusively before an alias
move, and their releases (``<seq:08d>.released.json``)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlops_ops.core.registry.ledger import (
    _LINEAGE_KEYS,
    Claimant,
    LedgerError,
    normalise_version,
    record_name,
)

CLAIMS_DIR = "claims"
_CLAIM_NAME = re.compile(r"^(\d{8})\.json$")
_RELEASE_NAME = re.compile(r"^(\d{8})\.released\.json$")


@dataclass(frozen=True)
class Claim:
    """A promotion in flight: sequence ``seq`` taken for ``version``, replacing ``alias_before``."""

    seq: int
    version: str
    previous_version: str | None
    alias_before: str | None
    action: str
    claimant: Claimant
    claimed_at: dt.datetime
    record_name: str
    record: Mapping[str, Any] = field(repr=False, compare=False)

    def is_for(self, claimant: Claimant, version: str, action: str) -> bool:
        return self.claimant == claimant and self.version == version and self.action == action

    def __str__(self) -> str:
        return f"claim {self.seq} ({self.action} v{self.version} by {self.claimant}, at {self.claimed_at:%H:%M:%S}Z)"


def claim_file_name(seq: int) -> str:
    return f"{seq:08d}.json"


def release_file_name(seq: int) -> str:
    return f"{seq:08d}.released.json"


def claim_seq(name: str) -> int | None:
    """The seq of a claim file name, or None for any other name."""
    match = _CLAIM_NAME.match(name)
    return int(match.group(1)) if match else None


def release_seq(name: str) -> int | None:
    match = _RELEASE_NAME.match(name)
    return int(match.group(1)) if match else None


def build_claim(
    *, record: Mapping[str, Any], alias_before: str | None, claimed_at: dt.datetime
) -> dict[str, Any]:
    """The claim document for ``record`` (built by :func:`build_record`)."""
    return {
        "seq": record["seq"],
        "version": record["version"],
        "previous_version": record["previous_version"],
        "alias_before": alias_before,
        "action": record["action"],
        "claimed_at": claimed_at.astimezone(dt.UTC).isoformat(),
        "record_name": record_name(record["version"], claimed_at),
        "record": dict(record),
        **{k: record.get(k) for k in _LINEAGE_KEYS},
    }


def parse_claim(name: str, doc: Any) -> Claim:
    seq = claim_seq(name)
    if seq is None or not isinstance(doc, Mapping) or doc.get("seq") != seq:
        raise LedgerError(
            f"claim {name} is not a claim document for its own sequence number; if no deploy or "
            "rollback task is running, move it out of deployments/claims/"
        )
    try:
        claimed_at = dt.datetime.fromisoformat(str(doc["claimed_at"]))
        record = doc["record"]
        version = normalise_version(doc["version"])
        if not isinstance(record, Mapping) or not version:
            raise ValueError("record or version missing")
        return Claim(
            seq=seq,
            version=version,
            previous_version=normalise_version(doc.get("previous_version")),
            alias_before=normalise_version(doc.get("alias_before")),
            action=str(doc.get("action", "promote")),
            claimant=Claimant.from_doc(doc),
            claimed_at=claimed_at,
            record_name=str(doc["record_name"]),
            record=record,
        )
    except (KeyError, ValueError, TypeError) as err:
        raise LedgerError(f"claim {name} is malformed ({err}); move it out of deployments/claims/") from None


# -- the ledger as a whole -----------------------------------------------------------------------
