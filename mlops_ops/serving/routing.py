"""Which arm answers a row: a stable hash of its sticky key against the challenger's traffic share.

Pure functions over strings: every replica of the service computes the same arm for the same key,
whatever its process, start time or Python hash seed.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass


class Strategy(enum.StrEnum):
    """How a challenger (the ``challenger`` alias) takes part, while it exists."""

    DIRECT = "direct"  # the challenger is never served
    CANARY = "canary"  # a share of keys is answered by the challenger
    AB = "ab"  # the same as canary, at an even share by default
    SHADOW = "shadow"  # the challenger scores every row; the champion always answers


class Arm(enum.StrEnum):
    CHAMPION = "champion"
    CHALLENGER = "challenger"
    SHADOW = "shadow"  # the challenger's score of a row answered by the champion


#: challenger share of keys when the spec gives none (contract11: canary 0.1, ab 0.5)
DEFAULT_TRAFFIC = {Strategy.CANARY: 0.1, Strategy.AB: 0.5, Strategy.SHADOW: 0.0, Strategy.DIRECT: 0.0}


@dataclass(frozen=True)
class Routing:
    """A pipeline's routing settings.

    :param strategy: see :class:`Strategy`.
    :param traffic: share of keys routed to the challenger, in [0, 1] (canary and ab only).
    :param sticky_key: request column whose value picks the arm; None: the prediction id.
    :param salt: mixed into the hash (the pipeline's name), so two pipelines split keys apart.
    """

    strategy: Strategy = Strategy.DIRECT
    traffic: float = 0.0
    sticky_key: str | None = None
    salt: str = ""

    def __post_init__(self) -> None:
        if not 0.0 <= self.traffic <= 1.0:
            raise ValueError(f"traffic must be a share in [0, 1], got {self.traffic!r}")

    def arm(self, key: str, *, has_challenger: bool) -> Arm:
        """The arm that answers a row with this sticky key (or prediction id)."""
        if not has_challenger or self.strategy not in (Strategy.CANARY, Strategy.AB):
            return Arm.CHAMPION
        return Arm.CHALLENGER if bucket(key, self.salt) < self.traffic else Arm.CHAMPION

    def shadows(self, *, has_challenger: bool) -> bool:
        """Whether the challenger scores every row without answering."""
        return has_challenger and self.strategy is Strategy.SHADOW


def bucket(key: str, salt: str = "") -> float:
    """A key's place in [0, 1): the first 8 bytes of SHA-256 of ``salt`` and ``key``, over 2**64."""
    digest = hashlib.sha256(f"{salt}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64
