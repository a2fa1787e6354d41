"""The ``notifications`` section: which events reach which Airflow notifier."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator

from mlops_ops.config.base import _Model

#: The events a pipeline can notify on, and the task whose result decides each.
NotificationEvent = Literal["drift", "degradation", "rejection", "rollback"]
EVENTS: tuple[str, ...] = ("drift", "degradation", "rejection", "rollback")

_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*[.:][A-Za-z_]\w*$")


class NotificationsSpec(_Model):
    """Send an Airflow notifier when monitoring finds drift or a degradation, when the gate rejects a
    challenger, or when a rollback moves the champion (``docs/metrics.md``, "Notifications").

    The notifier is any ``airflow.sdk.BaseNotifier`` subclass: a provider's (Slack, SMTP, Teams...)
    or the project's :class:`~mlops_ops.notifiers.FileNotifier`. It is imported and built with
    ``args`` when the DAGs are built; ``args`` are templated as the notifier declares, with
    ``mlops_event`` (``event``, ``pipeline``, ``summary``, ``result``) in the template context.
    """

    events: list[NotificationEvent] = Field(
        default_factory=lambda: ["drift", "degradation", "rejection", "rollback"],  # type: ignore[arg-type]
        min_length=1,
        description="Events that send a notification (not `on`: YAML 1.1 reads `on` as true).",
    )
    notifier: str = Field(
        description="Import path of the notifier class, e.g. "
        "airflow.providers.slack.notifications.slack.SlackNotifier."
    )
    args: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments of the notifier class (templated)."
    )

    @field_validator("notifier")
    @classmethod
    def _import_path(cls, value: str) -> str:
        if not _IMPORT_PATH.match(value):
            raise ValueError(
                f"expected the import path of a notifier class (package.module.ClassName), got {value!r}"
            )
        return value

    @field_validator("events")
    @classmethod
    def _unique(cls, value: list[Any]) -> list[Any]:
        return list(dict.fromkeys(value))
