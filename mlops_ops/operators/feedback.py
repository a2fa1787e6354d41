"""JoinOutcomesOperator: a run's delayed outcomes joined to the predictions they answer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from mlops_ops.artifacts import TRAINING_SPEC_ARTIFACT
from mlops_ops.links import ReportLink
from mlops_ops.operators.base import MlopsBaseOperator

if TYPE_CHECKING:
    import datetime as dt

    from airflow.sdk import Context


class JoinOutcomesOperator(MlopsBaseOperator):
    """Join the outcome rows that arrived in this run (an ingested snapshot) to their predictions.

    Predictions come from the online service's prediction log and from the batch-scoring outputs
    (``predictions/<interval>/``) made up to ``lookback_days`` before the outcomes' event times.
    Outcomes matched by an earlier run are duplicates (the earlier run's part is read, this run's
    own earlier part is not, so a re-run gives the same result and replaces its part). Writes the
    joined outcomes as this run's part (``outcomes/joined/date=<day>/part-<interval>.parquet``,
    :func:`~mlops_ops.hooks.outcomes.write_joined_outcomes`) and a report (JSON and HTML) with
    the counts of :func:`~mlops_ops.core.feedback.join_outcomes`, and returns the counts.

    Skipped when no outcome arrived (an empty snapshot, or the ingest found nothing) or when the
    pipeline has no champion yet (nothing was predicted). A configured column missing from the
    outcomes, or a label unlike the model's predictions, fails the task once (no retry can fix
    it), naming the source, the column and the fix.

    :param outcomes: the outcome ingest's result or snapshot URI (templated).
    :param label_column: the outcome column (``label`` is an Airflow operator attribute).
    :param prediction_id: the column with the prediction id (or give ``entity_key``).
    :param entity_key: the entity column, matched to the request / scoring input column of the
        same name.
    :param time: the outcome's event-time column (required with ``entity_key``).
    :param window_days: largest delay from prediction to outcome that joins, in days.
    :param lookback_days: how far before the event time predictions are searched (default twice
        ``window_days``).
    :param task: ``classification``, ``regression`` or ``auto`` (the champion's, from its training
        spec): how labels are written.
    """

    template_fields: Sequence[str] = ("outcomes",)
    operator_extra_links = (ReportLink(),)

    def __init__(
        self,
        *,
        outcomes: Any,
        label_column: str,
        prediction_id: str | None = None,
        entity_key: str | None = None,
        time: str | None = None,
        window_days: int = 14,
        lookback_days: int | None = None,
        task: str = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.outcomes = outcomes
        self.label_column = label_column
        self.prediction_id = prediction_id
        self.entity_key = entity_key
        self.time = time
        self.window_days = window_days
        self.lookback_days = lookback_days
        self.task = task

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_ops.core.feedback import FeedbackKeys, join_outcomes
        from mlops_ops.core.scoring import interval_key
        from mlops_ops.hooks.outcomes import joined_part_path, read_joined_outcomes, write_joined_outcomes

        if not self.outcomes:
            self.skip("no outcomes arrived for this run (the outcome ingest found nothing)")
        try:
            keys = FeedbackKeys(
                label=self.label_column,
                prediction_id=self.prediction_id,
                entity_key=self.entity_key,
                time=self.time,
                window_days=float(self.window_days),
                lookback_days=float(self.lookback_days or 2 * self.window_days),
            )
        except ValueError as err:
            raise AirflowFailException(f"join_outcomes is misconfigured: {err}") from None
        frame, manifest = self.read_snapshot(self.outcomes)
        where = f"the outcomes from {_source_name(manifest)} (snapshot {manifest['sha256'][:12]})"
        if frame.empty:
            self.skip(f"no outcomes arrived for this run: {where} has no rows")
        task = self._task()
        start, end = self._interval(context)
        since, until = self._prediction_range(frame, keys, end)
        predictions = self._predictions(keys, since, until)
        key = interval_key(start, context["ti"].run_id)
        own_part = joined_part_path(self.storage, start.date(), key)
        earlier = read_joined_outcomes(self.storage, predicted_since=since, exclude=own_part)
        result = join_outcomes(
            frame,
            predictions,
            keys=keys,
            task=task,
            run_start=start,
            run_end=end,
            already_joined=dict(zip(earlier["prediction_id"], earlier["label"], strict=True)),
            where=where,
        )
        part = write_joined_outcomes(self.storage, start.date(), key, result.table)
        counts = result.counts
        self.log.info(
            "outcomes: %d received -> %d joined (%d late; %d model row(s)), %d duplicate (%d with another "
            "label), %d orphan, "
            "%d out of window (> %s days), %d invalid; %d prediction(s) searched in [%s, %s); part %s",
            counts["received"], counts["joined"], counts["late"], counts["joined_rows"],
            counts["duplicate"], counts["conflicting"], counts["orphan"], counts["out_of_window"], self.window_days,
            counts["invalid"], predictions["prediction_id"].nunique(), since, until, part,
        )  # fmt: skip
        doc = {
            "pipeline": self.pipeline,
            "status": "joined" if counts["joined"] else "nothing_joined",
            "outcomes_sha256": manifest["sha256"],
            "source": manifest.get("source"),
            "keys": {
                "label": self.label_column,
                "prediction_id": self.prediction_id,
                "entity_key": self.entity_key,
                "time": self.time,
            },
            "window_days": self.window_days,
            "lookback_days": keys.lookback_days,
            "predictions_searched": {
                "since": since.isoformat(),
                "until": until.isoformat(),
                "predictions": int(predictions["prediction_id"].nunique()),
                "earlier_joined_rows": len(earlier),
            },
            "joined_uri": str(part),
            "data_interval": {
                "start": start.isoformat(),
                "end": end.isoformat(),
                "how": "the run's data interval",
            },
            **result.to_dict(),
            **self.lineage(context),
        }
        uri = self.write_report(context, doc, _html(self.pipeline, doc))
        return {**counts, "by_source": result.by_source, "joined_uri": str(part), "report_uri": uri}

    # -- steps ---------------------------------------------------------------------------------
    def _task(self) -> str:
        """``classification`` or ``regression``: given, or the champion's (its training spec)."""
        if self.task in ("classification", "regression"):
            return self.task
        champion = self.mlflow_hook.get_alias_version(self.pipeline)
        if champion is None:
            self.skip(f"{self.pipeline} has no champion yet: no prediction to join outcomes to")
        spec = self.mlflow_hook.load_dict(str(champion.run_id), TRAINING_SPEC_ARTIFACT, required=("task",))
        if spec is None:
            raise AirflowFailException(f"champion v{champion.version} has no {TRAINING_SPEC_ARTIFACT}")
        return str(spec["task"])

    @staticmethod
    def _interval(context: Context) -> tuple[dt.datetime, dt.datetime]:
        """The run's data interval; for a run without one (or a zero-width one, as a cron
        schedule's), the day from its logical date (the day of ``{{ ds }}``)."""
        import datetime as dt

        start: Any = context.get("data_interval_start")
        end: Any = context.get("data_interval_end")
        if start is None or end is None or start >= end:
            start = context.get("logical_date") or context["dag_run"].run_after
            end = start + dt.timedelta(days=1)
        # plain datetimes: pendulum's loses its zone when a timedelta is added after astimezone
        return (
            dt.datetime.fromtimestamp(start.timestamp(), tz=dt.UTC),
            dt.datetime.fromtimestamp(end.timestamp(), tz=dt.UTC),
        )

    @staticmethod
    def _prediction_range(frame: Any, keys: Any, end: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        """``[since, until)``: from ``lookback_days`` before the earliest event time (or the run's
        end) to just after the latest one (or the run's end)."""
        import datetime as dt

        from mlops_ops.core.feedback import event_times

        times = [end]
        if keys.time is not None:
            stamps = event_times(frame[keys.time]).dropna()
            if len(stamps):
                times += [stamps.min().to_pydatetime(), stamps.max().to_pydatetime()]
        since = min(times) - dt.timedelta(days=keys.lookback_days)
        until = max(times) + dt.timedelta(seconds=1)
        return since, until

    def _predictions(self, keys: Any, since: dt.datetime, until: dt.datetime) -> Any:
        """The candidate predictions: prediction log rows and batch-scoring outputs in ``[since, until)``."""
        import pandas as pd

        from mlops_ops.core.feedback import predictions_from_batch, predictions_from_log
        from mlops_ops.serving.prediction_log import read_prediction_log

        columns = ["prediction_id", "ts", "model_version", "arm", "prediction", "probability", "error"]
        if keys.entity_key is not None:
            columns.append("input")
        log = read_prediction_log(self.storage, since, until, columns=columns)
        frames = [predictions_from_log(log, entity_key=keys.entity_key)]
        frames += [
            predictions_from_batch(
                frame, manifest, interval_key=name, entity_key=keys.entity_key, where=where
            )
            for name, frame, manifest, where in self._batch_outputs(since, until)
        ]
        non_empty = [f for f in frames if len(f)]
        return pd.concat(non_empty, ignore_index=True) if non_empty else frames[0]

    def _batch_outputs(self, since: dt.datetime, until: dt.datetime) -> list[tuple[str, Any, Any, str]]:
        """``(interval key, predictions frame, manifest, uri)`` of every complete batch-scoring output
        whose interval starts (or, without one, was created) in ``[since, until)``."""
        import io

        import pandas as pd

        from mlops_ops.hooks.storage import read_json

        root = self.storage.base / "predictions"
        if not root.exists():
            return []
        found = []
        for folder in sorted(root.iterdir(), key=lambda p: p.name):
            manifest_path, data_path = folder / "manifest.json", folder / "predictions.parquet"
            if not manifest_path.exists() or not data_path.exists():
                continue  # a scoring run under way, or a stray folder
            manifest = read_json(manifest_path)
            interval = manifest.get("data_interval") or {}
            when = pd.Timestamp(interval.get("start") or manifest.get("created"))
            when = when.tz_localize("UTC") if when.tzinfo is None else when
            if not since <= when.to_pydatetime() < until:
                continue
            with data_path.open("rb") as fh:
                frame = pd.read_parquet(io.BytesIO(fh.read()))
            found.append((folder.name, frame, manifest, str(data_path)))
        return found


def _source_name(manifest: dict[str, Any]) -> str:
    source = manifest.get("source") or {}
    return str(source.get("uri") or source.get("conn_id") or "the feedback source")


def _html(pipeline: str, doc: dict[str, Any]) -> str:
    from mlops_ops.core.reports import render_html

    counts = doc["counts"]
    tables: list[Any] = []
    for bucket, rows in doc["samples"].items():
        if not rows:
            continue
        header = list(rows[0])
        tables.append(
            (
                f"{bucket}: {counts.get(bucket, 0)} row(s), first {len(rows)}",
                header,
                [[r.get(h) for h in header] for r in rows],
                [],
            )
        )
    return render_html(
        f"Outcomes joined to the predictions of {pipeline}",
        "success" if counts["joined"] else "passed_with_warnings",
        {
            "received": counts["received"],
            "joined (late)": f"{counts['joined']} ({counts['late']})",
            "joined model rows": counts["joined_rows"],
            "by source": ", ".join(f"{k} {v}" for k, v in doc["by_source"].items()) or "-",
            "duplicate (another label)": f"{counts['duplicate']} ({counts['conflicting']})",
            "orphan": counts["orphan"],
            "out of window": f"{counts['out_of_window']} (window {doc['window_days']} days)",
            "invalid": counts["invalid"],
            "joined outcomes": doc["joined_uri"],
        },
        tables,
        document=doc,
    )
