"""CheckModelPerformanceOperator: the champion's metric on a labelled batch vs at its promotion."""

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

    :param snapshot: the batch's ingest result or snapshot URI (templated).
    :param target: target column.
    :param metric: metric name (e.g. ``roc_auc``, ``rmse``).
    :param tolerance: largest allowed drop from the value at promotion.
    :param floor: the metric must not fall past this value.
    :param min_rows: fewer labelled rows are not judged.
    :param use_outcomes: also judge on the joined outcomes (``monitoring.feedback``); accepted here,
        used by the live-performance change (issue 13, part 2).
    :param outcome_days: how many days of joined outcomes the check reads.
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
        frame, manifest = self.read_snapshot(self.snapshot)
        spec = self.mlflow_hook.load_dict(
            champion.run_id, TRAINING_SPEC_ARTIFACT, required=TRAINING_SPEC_KEYS
        )
        if spec is None:
            raise AirflowFailException(f"champion v{champion.version} has no {TRAINING_SPEC_ARTIFACT}")
        check = self._check(champion, spec, frame, manifest)
        doc = {
            "pipeline": self.pipeline,
            "champion_version": str(champion.version),
            "snapshot_sha256": manifest["sha256"],
            "data_interval": self.judged_interval(context, manifest),
            **check.to_dict(),
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
        return {**check.to_dict(), "report_uri": uri, "run_url": run_url}

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
                "reasons": "; ".join(check.reasons),
            },
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
