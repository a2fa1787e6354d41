"""DetectAttributionDriftOperator: the champion's SHAP attribution profile on a batch vs at training."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlops_ops.artifacts import SHAP_IMPORTANCE_ARTIFACT, TRAINING_SPEC_ARTIFACT, TRAINING_SPEC_KEYS
from mlops_ops.core.model_uri import model_version_uri
from mlops_ops.links import MlflowRunLink, ReportLink
from mlops_ops.operators.base import MonitoringOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class DetectAttributionDriftOperator(MonitoringOperator):
    """Has the champion's reliance on its input columns moved on this batch?

    The champion explains a seeded sample of at most ``max_rows`` batch rows with the explainer of
    its reference profile (``explain/shap_importance.json``, logged at training on its holdout;
    linear and permutation explainers mask with the same background rows). The statistic is the
    share of the total mean |SHAP| that moved between columns (total variation distance of the
    share vectors), with a bootstrap interval over the batch's rows; ``drift`` when its one-sided
    ``1 - alpha`` lower bound exceeds ``delta`` (see :mod:`mlops_ops.core.drift.attribution`).
    Batches under ``min_rows`` rows are ``insufficient_data``. The report (JSON and HTML) is
    stored and logged to MLflow (``mlops.kind`` ``monitoring.attribution``).

    Reported, never a retrain trigger: its result does not feed ``request_retrain``. A champion
    without a reference profile (trained before explanations were logged, or a model shap cannot
    explain) is skipped, as is a pipeline without a champion.

    :param snapshot: the batch's ingest result or snapshot URI (templated).
    :param delta: share of the attribution whose move is drift (0..1).
    :param alpha: one-sided level of the bootstrap lower bound.
    :param min_rows: fewer batch rows are not judged.
    :param max_rows: batch rows explained at most (seeded sample).
    :param n_boot: bootstrap resamples.
    :param seed: seed of the row sample, the explainer and the bootstrap.
    """

    template_fields: Sequence[str] = ("snapshot",)
    operator_extra_links = (ReportLink(), MlflowRunLink())

    def __init__(
        self,
        *,
        snapshot: Any,
        delta: float = 0.1,
        alpha: float = 0.05,
        min_rows: int = 100,
        max_rows: int = 1000,
        n_boot: int = 500,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.snapshot = snapshot
        self.delta = delta
        self.alpha = alpha
        self.min_rows = min_rows
        self.max_rows = max_rows
        self.n_boot = n_boot
        self.seed = seed

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_ops.core.drift.attribution import attribution_drift
        from mlops_ops.core.explain import explain_pipeline, stored_background

        champion = self.champion()
        hook = self.mlflow_hook
        reference = hook.load_dict(
            champion.run_id, SHAP_IMPORTANCE_ARTIFACT, required=("mean_abs_shap", "explainer")
        )
        if reference is None:
            self.skip(
                f"champion v{champion.version} has no {SHAP_IMPORTANCE_ARTIFACT} (trained before explanations "
                "were logged, or shap cannot explain it): no attribution reference. Retrain to get one"
            )
        spec = hook.load_dict(champion.run_id, TRAINING_SPEC_ARTIFACT, required=TRAINING_SPEC_KEYS)
        if spec is None:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(f"champion v{champion.version} has no {TRAINING_SPEC_ARTIFACT}")
        frame, manifest = self.read_snapshot(self.snapshot)
        where = f"snapshot {manifest['sha256'][:12]}"
        schema = self.version_schema(champion.run_id, spec)
        x = schema.coerce(frame, where=where)
        background = stored_background(reference)
        if background is not None:
            background = schema.coerce(background, where=f"{SHAP_IMPORTANCE_ARTIFACT} of v{champion.version}")
        explained = None
        if len(x) >= self.min_rows:
            model = hook.load_sklearn_model(model_version_uri(self.pipeline, champion.version))
            explained = explain_pipeline(
                model, x, task=spec["task"], background=background, max_rows=self.max_rows, seed=self.seed
            )
            if (explained.explainer, explained.output) != (reference["explainer"], reference["output"]):
                raise ValueError(
                    f"the batch was explained by the {explained.explainer} explainer ({explained.output}), the "
                    f"reference of v{champion.version} by the {reference['explainer']} one "
                    f"({reference['output']}): not comparable; retrain the champion"
                )
        import pandas as pd

        values = (
            explained.values
            if explained is not None
            else pd.DataFrame(columns=list(reference["mean_abs_shap"]))
        )
        result = attribution_drift(
            reference["mean_abs_shap"],
            values,
            delta=self.delta,
            alpha=self.alpha,
            n_boot=self.n_boot,
            min_rows=min(self.min_rows, self.max_rows),
            seed=self.seed,
        )
        if explained is None:
            result.reasons[:] = [f"{len(x)} batch row(s), fewer than min_rows={self.min_rows}: not judged"]
        doc = {
            "pipeline": self.pipeline,
            "champion_version": str(champion.version),
            "snapshot_sha256": manifest["sha256"],
            "data_interval": self.judged_interval(context, manifest),
            "explainer": reference["explainer"],
            "output": reference["output"],
            "batch_rows": len(x),
            "reference_rows": reference.get("rows"),
            "retrain_trigger": False,
            **result.to_dict(),
            **self.lineage(context),
        }
        html = self._html(champion, doc)
        uri = self.write_report(context, doc, html)
        metrics = {
            "attribution.moved": result.moved,
            "attribution.moved_lower": result.lower,
            "attribution.rows": result.rows,
        }
        _, run_url = self.log_monitoring_run(context, "attribution", champion, metrics, doc, html)
        self.log.info(
            "attribution %s: %s of the attribution moved (lower bound %s, delta %s) on %d explained row(s)",
            result.status,
            "n/a" if result.moved is None else f"{result.moved:.3f}",
            "n/a" if result.lower is None else f"{result.lower:.3f}",
            self.delta,
            result.rows,
        )
        return {
            "status": result.status,
            "moved": result.moved,
            "lower": result.lower,
            "upper": result.upper,
            "delta": self.delta,
            "rows": result.rows,
            "champion_version": str(champion.version),
            "report_uri": uri,
            "run_url": run_url,
        }

    def _html(self, champion: Any, doc: dict[str, Any]) -> str:
        from mlops_ops.core.reports import render_html

        def pct(value: Any) -> Any:
            return None if value is None else f"{value:.1%}"

        return render_html(
            f"Attribution drift of {self.pipeline} champion v{champion.version}",
            doc["status"],
            {
                "status": doc["status"],
                "share of the attribution moved": pct(doc["moved"]),
                f"interval ({doc['level']:.0%} one-sided bounds)": f"{pct(doc['lower'])} .. {pct(doc['upper'])}"
                if doc["lower"] is not None
                else None,
                "delta": pct(doc["delta"]),
                "explainer": f"{doc['explainer']} ({doc['output'].replace('_', '-')})",
                "rows explained": doc["rows"],
                "total |SHAP| vs reference": doc["total_ratio"],
                "retrain trigger": "no (reported only)",
                "reasons": "; ".join(doc["reasons"]),
            },
            [
                (
                    "Mean |SHAP| per column (largest change of share first)",
                    ("column", "reference", "batch", "reference share", "batch share", "change"),
                    [
                        (
                            c["column"],
                            c["reference_mean_abs"],
                            c["batch_mean_abs"],
                            pct(c["reference_share"]),
                            pct(c["batch_share"]),
                            f"{c['change']:+.1%}",
                        )
                        for c in doc["columns"]
                    ],
                    [],
                )
            ],
            document=doc,
        )
