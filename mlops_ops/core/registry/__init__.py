"""The champion's history: deployment ledger records, promotion claims, and the rules over them.

MLflow cannot change an alias conditionally, so the write-once deployment ledger is where
promotions are serialised. Every record carries a sequence number ``seq``; the record with the
highest ``seq`` is the **head**, and the head's version is the champion as far as mlops-ops knows.
Before it moves the alias, a promotion **claims** sequence ``head.seq + 1`` by creating
``deployments/claims/<seq:08d>.json`` exclusively. Only one writer can create that name, so only
one of two concurrent promotions gets past this point; the other re-reads the ledger and is
refused with "champion changed since evaluation".

A claim holds the full ledger record it will become, so whoever completes it (the claimant, its
retry, or a later promotion finding that the alias already moved) writes identical bytes under the
same name.

This module is pure: it reads documents and returns decisions. Storage and MLflow calls live in
``mlops_ops.hooks``.

The package holds the records (:mod:`~mlops_ops.core.registry.ledger`), the claims
(:mod:`~mlops_ops.core.registry.claims`) and the rules over both
(:mod:`~mlops_ops.core.registry.promotion`); every name is exported here.
"""

from mlops_ops.core.registry.claims import (
    CLAIMS_DIR,
    Claim,
    build_claim,
    claim_file_name,
    claim_seq,
    parse_claim,
    release_file_name,
    release_seq,
)
from mlops_ops.core.registry.ledger import (
    ACTIONS,
    DEFAULT_CLAIM_LEASE_SECONDS,
    PREVIOUS,
    RECORD_SCHEMA,
    AliasDivergedError,
    ChampionChangedError,
    Claimant,
    LedgerError,
    LedgerRecord,
    PromotionRefusedError,
    RollbackRefusedError,
    build_record,
    describe,
    normalise_version,
    parse_record,
    record_name,
)
from mlops_ops.core.registry.promotion import (
    LedgerState,
    PlanKind,
    PromotionPlan,
    gate_evidence,
    parse_version_request,
    plan_promotion,
    resolve_previous,
)

__all__ = [
    "ACTIONS",
    "AliasDivergedError",
    "CLAIMS_DIR",
    "ChampionChangedError",
    "Claim",
    "Claimant",
    "DEFAULT_CLAIM_LEASE_SECONDS",
    "LedgerError",
    "LedgerRecord",
    "LedgerState",
    "PREVIOUS",
    "PlanKind",
    "PromotionPlan",
    "PromotionRefusedError",
    "RECORD_SCHEMA",
    "RollbackRefusedError",
    "build_claim",
    "build_record",
    "claim_file_name",
    "claim_seq",
    "describe",
    "gate_evidence",
    "normalise_version",
    "parse_claim",
    "parse_record",
    "parse_version_request",
    "plan_promotion",
    "record_name",
    "release_file_name",
    "release_seq",
    "resolve_previous",
]
