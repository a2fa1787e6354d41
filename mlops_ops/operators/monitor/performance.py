"""CheckModelPerformanceOperator: the champion's metric on a labelled batch, or on its joined
outcomes, vs at its promotion."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from mlops_ops.artifacts import DECISION_ARTIFACT, TRAINING_SPEC_ARTIFACT, TRAINING_SPEC_KEYS
from mlops_ops.core.model_uri import model_version_uri
from mlops_ops.hooks.pushgateway import push_metrics
from mlops_ops.links import MlflowRunLink, ReportLink
from mlops_ops.operators.base import MonitoringOperator, short_number

if TYPE_CHECKING:
    from airflow.sdk import Context


class CheckModelPerformanceOperator(MonitoringOperator):
    """The champion's metric on a labelled batch vs the metric recorded when it was promoted.

    Degraded when the metric dropped by more than ``tolerance`` (in the metric's better direction)
    or fell past ``floor``. Unlabelled batches (no target column, or fewer labelled rows than
    ``min_rows``) are reported as such, not judged. No champion: skipped.

    With ``use_outcomes``, it also reads the **joined outcomes** (:mod:`mlops_ops.hooks.outcomes`)
    predicted in the ``outcome_days`` days before the run's data interval end, and reports each
    model version's metric per day and over the window with bootstrap intervals
    (:func:`mlops_ops.core.live_performance.live_performance`; the report's ``live`` list). When
    the champion version has joined outcomes in the window, the verdict is on them and the batch's
    labels are not used (``source: outcomes``): outcomes win, being the labels of what the champion
    really predicted; the batch's labels judge only when it has none (``source: batch``). On
    outcomes the rule is applied to the interval's better end (see
    :func:`mlops_ops.core.monitoring.check_performance`): degraded only on evidence, so one day of
    few, noisy outcomes does not request a retrain.

    :param snapshot: the batch's ingest result or snapshot URI (templated).
    :param target: target column.
    :param metric: metric name (e.g. ``roc_auc``, ``rmse``).
    :param tolerance: largest allowed drop from the value at promotion.
    :param floor: the metric must not fall past this value.
    :param min_rows: fewer labelled rows (batch rows or the champion's joined outcomes) are not judged.
    :param use_outcomes: judge on joined outcomes when the champion has some in the window.
    :param outcome_days: the window: outcomes of predictions made in the days before the data
        interval's end.
    """

    template_fields: Sequence[str] = ("snapshot",)
    operator_extra_links = (ReportLink(), MlflowRunLink())

    def __init__(
        self,
        *,
        snapshot: Any,
        target: str,
        metric: str,
        tolerance: float = 0.05,
        floor: float | None = None,
        min_rows: int = 200,
        use_outcomes: bool = False,
        outcome_days: int = 14,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if outcome_days < 1:
            raise ValueError(f"outcome_days must be at least 1, got {outcome_days}")
        self.use_outcomes = use_outcomes
        self.outcome_days = outcome_days
        self.snapshot = snapshot
        self.target = target
        self.metric = metric
        self.tolerance = tolerance
        self.floor = floor
        self.min_rows = min_rows

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_ops.config import METRIC_DIRECTIONS

        if self.metric not in METRIC_DIRECTIONS:
            raise AirflowFailException(f"unknown metric {self.metric!r}; known: {sorted(METRIC_DIRECTIONS)}")
        champion = self.champion()
        # with monitoring.feedback the check also runs when ingest_batch skipped (no batch today):
        # then only the joined outcomes can be judged
        no_batch = self.snapshot in (None, "", {})
        if no_batch and not self.use_outcomes:
            self.skip("no batch snapshot: ingest_batch found nothing to check")
        frame, manifest = (None, None) if no_batch else self.read_snapshot(self.snapshot)
        spec = self.mlflow_hook.load_dict(
            champion.run_id, TRAINING_SPEC_ARTIFACT, required=TRAINING_SPEC_KEYS
        )
        if spec is None:
            raise AirflowFailException(f"champion v{champion.version} has no {TRAINING_SPEC_ARTIFACT}")
        live: list[dict[str, Any]] = []
        window: dict[str, str] | None = None
        check = None
        if self.use_outcomes:
            check, live, window = self._check_outcomes(context, champion, spec)
        if check is None and no_batch:
            self.skip(
                f"no batch snapshot and no joined outcomes of champion v{champion.version} "
                "predicted in the window: nothing to judge"
            )
        if check is None:
            assert manifest is not None  # no_batch returned above
            check = self._check(champion, spec, frame, manifest)
            if self.use_outcomes:
                check.reasons.append(
                    f"no joined outcomes of champion v{champion.version} predicted in the window: "
                    "judged on the batch's labels"
                )
        doc = {
            "pipeline": self.pipeline,
            "champion_version": str(champion.version),
            "snapshot_sha256": manifest["sha256"] if manifest else None,
            "data_interval": self.judged_interval(context, manifest),
            **check.to_dict(),
            "live": live,
            "outcome_window": window,
            **self.lineage(context),
        }
        html = self._html(champion, check, doc)
        uri = self.write_report(context, doc, html)
        push_metrics("performance", self.pipeline, context, doc)
        metrics = {f"performance.{self.metric}": check.value, "performance.rows": check.rows}
        _, run_url = self.log_monitoring_run(context, "performance", champion, metrics, doc, html)
        self.log.info(
            "performance %s: %s = %s vs %s at promotion (tolerance %s, floor %s) on %d labelled row(s)",
            check.status,
            self.metric,
            short_number(check.value),
            short_number(check.baseline),
            self.tolerance,
            self.floor,
            check.rows,
        )
        return {**check.to_dict(), "live": live, "report_uri": uri, "run_url": run_url}

    def _check_outcomes(
        self, context: Context, champion: Any, spec: dict[str, Any]
    ) -> tuple[Any, list[dict[str, Any]], dict[str, str]]:
        """The check on the champion's joined outcomes (None when it has none in the window), the
        ``live`` list of every version, and the window ``{"start", "end"}`` (ISO, UTC)."""
        import datetime as dt

        from mlops_ops.config import CLASSIFICATION_METRICS, REGRESSION_METRICS
        from mlops_ops.core.live_performance import DEFAULT_LEVEL, live_performance
        from mlops_ops.core.monitoring import check_performance
        from mlops_ops.hooks.outcomes import read_joined_outcomes

        applicable = CLASSIFICATION_METRICS if spec["task"] == "classification" else REGRESSION_METRICS
        if self.metric not in applicable:
            raise AirflowFailException(
                f"{self.metric!r} does not apply to champion v{champion.version}, a {spec['task']} model; "
                f"set monitoring.performance.metric to one of {list(applicable)}"
            )
        end = context.get("data_interval_end") or dt.datetime.now(dt.UTC)
        start = end - dt.timedelta(days=self.outcome_days)
        window = {"start": start.isoformat(), "end": end.isoformat()}
        outcomes = read_joined_outcomes(self.storage, predicted_since=start, predicted_until=end)
        entries = live_performance(outcomes, metric=self.metric, task=spec["task"], level=DEFAULT_LEVEL)
        live = [e.to_dict() for e in entries]
        self.log.info(
            "%d joined outcome(s) predicted in [%s, %s): %d live entr(ies)",
            len(outcomes),
            start,
            end,
            len(live),
        )
        own = next((e for e in entries if e.model_version == str(champion.version) and e.day is None), None)
        if own is None:
            return None, live, window
        interval = (
            (own.lower, own.upper, own.level) if own.lower is not None and own.upper is not None else None
        )
        check = check_performance(
            metric=self.metric,
            value=own.value if interval is not None else None,
            baseline=self._baseline(champion),
            rows=own.rows,
            tolerance=self.tolerance,
            floor=self.floor,
            min_rows=self.min_rows,
            interval=interval,
            source="outcomes",
        )
        if interval is None and own.rows >= self.min_rows:
            check.value = own.value
            check.reasons.append(f"no interval on the champion's joined outcomes: {own.reason}")
        return check, live, window

    def _check(self, champion: Any, spec: dict[str, Any], frame: Any, manifest: dict[str, Any]) -> Any:
        """The ``PerformanceCheck`` of the champion on the batch's labelled rows."""
        from mlops_ops.core.monitoring import PerformanceCheck, check_performance

        baseline = self._baseline(champion)
        if self.target not in frame.columns:
            check = PerformanceCheck(
                "unlabelled", self.metric, None, baseline, self.tolerance, self.floor, 0, self.min_rows
            )
            check.reasons.append(f"the batch has no {self.target!r} column: performance not judged")
            return check
        from mlops_ops.config import CLASSIFICATION_METRICS, REGRESSION_METRICS

        applicable = CLASSIFICATION_METRICS if spec["task"] == "classification" else REGRESSION_METRICS
        if self.metric not in applicable:
            raise AirflowFailException(
                f"{self.metric!r} does not apply to champion v{champion.version}, a {spec['task']} model; "
                f"set monitoring.performance.metric to one of {list(applicable)}"
            )
        labelled = frame[frame[self.target].notna()]
        value = None
        if len(labelled) >= self.min_rows:
            value = self._metric_value(champion, spec, labelled, manifest)
        return check_performance(
            metric=self.metric,
            value=value,
            baseline=baseline,
            rows=len(labelled),
            tolerance=self.tolerance,
            floor=self.floor,
            min_rows=self.min_rows,
        )

    def _metric_value(
        self, champion: Any, spec: dict[str, Any], labelled: Any, manifest: dict[str, Any]
    ) -> float | None:
        """The champion's metric on the labelled rows (None when it cannot be computed)."""
        from mlops_ops.core.evaluation import compute_metrics, score_model

        model = self.mlflow_hook.load_sklearn_model(model_version_uri(self.pipeline, champion.version))
        try:
            x = self.version_schema(champion.run_id, spec).coerce(
                labelled, where=f"snapshot {manifest['sha256'][:12]}"
            )
            scores = score_model(model, x, spec["task"])
            value: float | None = compute_metrics(spec["task"], labelled[self.target].to_numpy(), scores).get(
                self.metric
            )
        except (KeyError, ValueError, AttributeError, TypeError) as err:
            raise AirflowFailException(
                f"champion v{champion.version} could not be scored on the batch "
                f"({type(err).__name__}: {err}); check the batch's columns or retrain the champion"
            ) from None
        return value

    def _html(self, champion: Any, check: Any, doc: dict[str, Any]) -> str:
        from mlops_ops.core.reports import render_html

        return render_html(
            f"Performance of {self.pipeline} champion v{champion.version}",
            check.status,
            {
                "status": check.status,
                "metric": self.metric,
                "value on this batch": check.value,
                "value at promotion": check.baseline,
                "drop (positive = worse)": check.drop,
                "tolerance": self.tolerance,
                "floor": self.floor,
                "labelled rows": check.rows,
                "labels from": check.source,
                "interval": None
                if check.lower is None
                else f"[{short_number(check.lower)}, {short_number(check.upper)}] at {check.level:.0%}",
                "reasons": "; ".join(check.reasons),
            },
            tables=[_live_table(doc["live"], doc.get("outcome_window"))] if doc.get("live") else (),
            document=doc,
        )

    def _baseline(self, champion: Any) -> float | None:
        """The metric the champion was promoted with (its gate decision), else its holdout metric."""
        hook = self.mlflow_hook
        decision = hook.load_dict(champion.run_id, DECISION_ARTIFACT)
        for key in ("challenger_metrics", "metrics"):
            value = ((decision or {}).get(key) or {}).get(self.metric)
            if value is not None:
                return float(value)
        metrics = hook.get_run_metrics(champion.run_id)
        value = metrics.get(f"holdout_{self.metric}", metrics.get(self.metric))
        return float(value) if value is not None else None


def _live_table(live: list[dict[str, Any]], window: dict[str, str] | None) -> Any:
    """The ``live`` list as a table: one row per version and day, the window's row last per version."""
    rows = [
        [
            f"v{e['model_version']}",
            e["day"] or "whole window",
            e["rows"],
            e["value"],
            e["lower"],
            e["upper"],
            e.get("reason") or "",
        ]
        for e in live
    ]
    level = f"{live[0]['level']:.0%}" if live else ""
    span = f" predicted {window['start'][:10]} to {window['end'][:10]}" if window else ""
    caption = (
        f"Live {live[0]['metric'] if live else ''} on joined outcomes{span}, {level} bootstrap intervals"
    )
    header = ["version", "day (UTC)", "outcomes", "value", "lower", "upper", "note"]
    return (caption, header, rows, ["" if e["day"] else "total" for e in live])
