"""The ``deployment`` section of a pipeline spec: how a new model version reaches traffic.

``direct`` (default) moves the ``champion`` alias when the gate accepts, as always. ``canary``,
``ab`` and ``shadow`` move a ``challenger`` alias instead; the serving process routes to it while
it exists, and the ``<name>_release`` DAG judges it on live traffic after the bake window, then
promotes it or rolls it back (docs/releases.md). This module imports only pydantic.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from mlops_ops.config.base import _Model
from mlops_ops.config.errors import FieldError

Strategy = Literal["direct", "canary", "shadow", "ab"]

#: Share of keys routed to the challenger when ``traffic`` is not given.
DEFAULT_TRAFFIC: dict[str, float] = {"canary": 0.1, "ab": 0.5}

_COLUMN_RE = re.compile(r"^\S(.*\S)?$")


class BakeSpec(_Model):
    """How long a challenger takes live traffic before it is judged: both conditions must hold."""

    minutes: int = Field(
        default=60, ge=0, le=43_200, description="Minutes since the challenger alias was set (max 30 days)."
    )
    min_requests: int = Field(
        default=500,
        ge=20,
        description="Requests each arm must have answered (or, for shadow, scored) before the judge runs.",
    )


class GuardrailsSpec(_Model):
    """What the judge rolls a challenger back for; each is a statistical test (docs/releases.md)."""

    max_error_rate: float = Field(
        default=0.01,
        ge=0.0,
        lt=1.0,
        description="The challenger's share of its requests answered with a 5xx (a server error).",
    )
    max_p95_latency_ratio: float = Field(
        default=1.5, ge=1.0, description="Challenger p95 latency / champion p95 latency."
    )
    max_prediction_drift: float = Field(
        default=0.1,
        gt=0.0,
        le=1.0,
        description="Effect size between the arms' prediction distributions (the drift engine's: "
        "Wasserstein-1 / champion std for probabilities and numbers, Jensen-Shannon distance for labels).",
    )
    metric_tolerance: float = Field(
        default=0.01,
        ge=0.0,
        description="The primary metric may be this much worse than the champion's (in the metric's "
        "units), when labelled outcomes exist.",
    )


class WatchSpec(_Model):
    """After a promotion, roll the new champion back to the previous one if a guardrail breaches."""

    minutes: int = Field(default=60, ge=0, le=43_200, description="Length of the watch window; 0: no watch.")


class DeploymentSpec(_Model):
    """``deployment``: the release strategy, its traffic split, bake window, guardrails and watch."""

    strategy: Strategy = Field(
        default="direct",
        description="direct: the gate moves champion. canary / ab: a challenger takes a share of keys. "
        "shadow: the challenger scores every row, the champion answers.",
    )
    traffic: float | None = Field(
        default=None,
        gt=0.0,
        lt=1.0,
        description="Share of keys routed to the challenger (canary default 0.1, ab 0.5); ignored by "
        "direct and shadow.",
    )
    sticky_key: str | None = Field(
        default=None,
        description="Request column whose value picks the arm (a stable hash); absent: the prediction id.",
    )
    bake: BakeSpec = Field(default_factory=BakeSpec)
    guardrails: GuardrailsSpec = Field(default_factory=GuardrailsSpec)
    watch: WatchSpec = Field(default_factory=WatchSpec)
    approval: bool = Field(
        default=False, description="Ask a human (Airflow's ApprovalOperator) before a promotion."
    )

    @model_validator(mode="before")
    @classmethod
    def _default_traffic(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("traffic") is None:
            share = DEFAULT_TRAFFIC.get(str(data.get("strategy")))
            if share is not None:
                data = {**data, "traffic": share}
        return data

    @field_validator("sticky_key")
    @classmethod
    def _column(cls, value: str | None) -> str | None:
        if value is not None and not _COLUMN_RE.match(value):
            raise ValueError(f"expected a column name without surrounding spaces, got {value!r}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DeploymentSpec:
        if self.strategy == "direct" and self.approval:
            raise FieldError(
                "approval",
                "approval applies to a release (strategy canary, shadow or ab); with strategy direct "
                "the gate's verdict moves the champion",
            )
        return self

    @property
    def is_release(self) -> bool:
        """True when a new version goes to a ``challenger`` alias first (canary, shadow, ab)."""
        return self.strategy != "direct"

    @property
    def challenger_share(self) -> float:
        """Share of keys the challenger answers: ``traffic`` for canary and ab, else 0."""
        return float(self.traffic or 0.0) if self.strategy in DEFAULT_TRAFFIC else 0.0
