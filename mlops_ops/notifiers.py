"""Airflow notifiers on a pipeline's events: drift, degradation, gate rejection, rollback.

The spec's ``notifications`` section (:class:`~mlops_ops.config.NotificationsSpec`) names any
``airflow.sdk.BaseNotifier``; the DAG factories wrap it in a :class:`PipelineEventNotifier` set as
the deciding task's ``on_success_callback``, which calls it only when the task's result shows the
event. :class:`FileNotifier` is the project's own notifier: one JSON line per event in a file.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

if TYPE_CHECKING:
    from airflow.sdk import Context

#: event -> (the task that decides it in the generated DAGs, a check of that task's result)
TASK_OF_EVENT = {
    "drift": "detect_drift",
    "degradation": "check_performance",
    "rejection": "evaluate",
    "rollback": "rollback",
}


def _drift(pipeline: str, result: dict[str, Any]) -> str | None:
    if result.get("status") != "drift" and not result.get("prediction_drift"):
        return None
    columns = ", ".join(result.get("drifted_columns") or []) or "none"
    predictions = "; the predictions drifted" if result.get("prediction_drift") else ""
    return (
        f"{pipeline}: drift against champion v{result.get('champion_version')} "
        f"(drifted columns: {columns}{predictions})"
    )


def _degradation(pipeline: str, result: dict[str, Any]) -> str | None:
    if not result.get("degraded"):
        return None
    return (
        f"{pipeline}: the champion's {result.get('metric')} fell to {result.get('value')} "
        f"from {result.get('baseline')} at promotion"
    )


def _rejection(pipeline: str, result: dict[str, Any]) -> str | None:
    if result.get("promote", True) or result.get("challenger_version") == result.get("baseline_version"):
        return None
    return (
        f"{pipeline}: the gate rejected v{result.get('challenger_version')}; the champion stays "
        f"v{result.get('baseline_version')}. Reasons: {'; '.join(result.get('reasons') or [])}"
    )


def _rollback(pipeline: str, result: dict[str, Any]) -> str | None:
    if not result.get("changed"):
        return None
    return f"{pipeline}: rolled back to v{result.get('version')} (was v{result.get('previous_version')})"


SUMMARIES: dict[str, Callable[[str, dict[str, Any]], str | None]] = {
    "drift": _drift,
    "degradation": _degradation,
    "rejection": _rejection,
    "rollback": _rollback,
}


def event_summary(event: str, pipeline: str, result: Any) -> str | None:
    """One sentence on the event when the deciding task's result shows it, else None.

    :param event: ``drift``, ``degradation``, ``rejection`` or ``rollback``.
    :param result: the deciding task's XCom return value (docs/architecture.md, "XCom payloads").
    """
    if not isinstance(result, dict):
        return None
    return SUMMARIES[event](pipeline, result)


class PipelineEventNotifier(BaseNotifier):
    """Call ``notifier`` when the task that ran shows ``event`` in its result; do nothing otherwise.

    Set as the deciding task's ``on_success_callback``. Before calling, it adds ``mlops_event``
    (``event``, ``pipeline``, ``summary``, ``result``) to the context, so the wrapped notifier's
    templated fields can say what happened (``{{ mlops_event.summary }}``).

    :param event: one of :data:`SUMMARIES`.
    :param pipeline: the pipeline's name.
    :param notifier: the notifier to call (any ``BaseNotifier``).
    """

    def __init__(self, *, event: str, pipeline: str, notifier: BaseNotifier) -> None:
        super().__init__()
        self.event = event
        self.pipeline = pipeline
        self.notifier = notifier

    def notify(self, context: Context) -> None:
        ti = context["ti"]
        result = ti.xcom_pull(task_ids=ti.task_id)
        summary = event_summary(self.event, self.pipeline, result)
        if summary is None:
            return
        self.log.info("notifying %s: %s", type(self.notifier).__name__, summary)
        event = {"event": self.event, "pipeline": self.pipeline, "summary": summary, "result": result}
        context["mlops_event"] = event  # type: ignore[typeddict-unknown-key]
        self.notifier(context)


class FileNotifier(BaseNotifier):
    """Append one JSON line per notification to a local file (an audit trail, or for tests).

    A line holds ``at`` (UTC, ISO 8601), ``message``, ``event``, ``pipeline``, ``dag_id``,
    ``run_id`` and ``task_id``.

    :param path: the file to append to; its folder is created (templated).
    :param message: the text (templated; default the event's summary).
    """

    template_fields: Sequence[str] = ("path", "message")

    def __init__(self, *, path: str, message: str = "{{ mlops_event.summary }}") -> None:
        super().__init__()
        self.path = path
        self.message = message

    def notify(self, context: Context) -> None:
        event: dict[str, Any] = dict(context.get("mlops_event") or {})  # type: ignore[call-overload]
        ti = context.get("ti")
        line = {
            "at": dt.datetime.now(dt.UTC).isoformat(),
            "message": self.message,
            "event": event.get("event"),
            "pipeline": event.get("pipeline"),
            "dag_id": getattr(ti, "dag_id", None),
            "run_id": getattr(ti, "run_id", None),
            "task_id": getattr(ti, "task_id", None),
        }
        path = Path(self.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as out:  # one write per line: appends do not interleave
            out.write(json.dumps(line, default=str) + "\n")


def build_notifier(spec: Any, pipeline: str) -> BaseNotifier:
    """The notifier the spec's ``notifications`` section names, built with its ``args``.

    :raises SpecError: naming ``notifications.notifier`` or ``notifications.args`` and the fix,
        when the class cannot be imported, is not a ``BaseNotifier``, or refuses the arguments.
    """
    from mlops_ops.config import SpecError

    where = f"pipeline {pipeline!r}: notifications.notifier"
    module_name, _, class_name = spec.notifier.replace(":", ".").rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise SpecError(
            f"{where}: cannot import {spec.notifier!r} ({type(err).__name__}: {err}); install the "
            "provider that ships it or correct the path"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, BaseNotifier)):
        raise SpecError(f"{where}: {spec.notifier!r} is not a subclass of airflow.sdk.BaseNotifier")
    try:
        return cls(**spec.args)
    except TypeError as err:
        raise SpecError(
            f"pipeline {pipeline!r}: notifications.args do not fit {spec.notifier}: {err}"
        ) from None


def event_callbacks(spec: Any, event: str) -> dict[str, Any]:
    """Task keyword arguments that notify on ``event`` (``{}`` when the spec does not ask for it).

    :param spec: the :class:`~mlops_ops.config.PipelineSpec`.
    """
    notifications = spec.notifications
    if notifications is None or event not in notifications.events:
        return {}
    notifier = build_notifier(notifications, spec.name)
    return {
        "on_success_callback": [PipelineEventNotifier(event=event, pipeline=spec.name, notifier=notifier)]
    }
