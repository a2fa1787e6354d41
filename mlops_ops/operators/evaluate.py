"""EvaluateModelOperator: challenger vs champion on one holdout, through the gate. Read-only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from mlops_ops.artifacts import (
    DECISION_ARTIFACT,
    DECISION_HTML_ARTIFACT,
    IMPORTANCE_ARTIFACT,
    TRAINING_SPEC_ARTIFACT,
    TrainingSpec,
)
from mlops_ops.core.model_uri import model_version_uri
from mlops_ops.hooks.pushgateway import push_metrics
from mlops_ops.links import MlflowModelVersionLink, MlflowRunLink, ReportLink
from mlops_ops.operators.base import MlopsBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

#: permutation importance runs on at most this many holdout rows (seeded subsample), to bound time
IMPORTANCE_MAX_ROWS = 5000


class EvaluateModelOperator(MlopsBaseOperator):
    """Score the challenger and the serving champion on the same holdout and apply the gate.

    The holdout is the held-out side of the challenger's training snapshot (the same seeded row
    hash as training), so neither the challenger nor, for rows already held out before, the
    champion has trained on it. Both models' predictions go to the gate, which applies value
    thresholds, change thresholds against the champion, a paired bootstrap confidence interval of
    the difference (non-inferiority or superiority) and the same thresholds within each configured
    slice. It fails closed (a missing metric or a scoring error rejects) and records "no baseline"
    when no champion exists. The challenger's permutation importance is logged to its MLflow run
    (``explain/permutation_importance.json`` and metrics ``importance.<feature>``). The decision
    is stored as JSON and HTML, logged to the challenger's MLflow run and tagged on its version.
    The registry's aliases are not changed.

    :param model: the training task's result (``version``, ``run_id``) (templated).
    :param evaluation: the spec's ``evaluation`` section: ``primary_metric``, ``thresholds``
        (``{metric: {lower, upper}}``), ``change_thresholds`` (``{metric: {absolute, relative}}``),
        ``bootstrap``, ``slices`` and ``permutation_importance``.
    :param snapshot: data to draw the holdout from (templated); default: the challenger's
        training snapshot.
    """

    template_fields: Sequence[str] = ("model", "snapshot")
    operator_extra_links = (ReportLink(), MlflowRunLink(), MlflowModelVersionLink())

    def __init__(
        self,
        *,
        model: Any,
        evaluation: dict[str, Any] | None = None,
        snapshot: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.evaluation = evaluation
        self.snapshot = snapshot

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_ops.core.evaluation import decide
        from mlops_ops.core.reports import decision_html
        from mlops_ops.core.training import split

        spec = self._settings()
        hook = self.mlflow_hook
        name, version = self.pipeline, str(self.model["version"])
        run_id, training = self._challenger(hook, name, version)
        self._check_metrics_apply(spec, training.task)
        frame, manifest = self.read_snapshot(self.snapshot or training.snapshot_uri)
        _, holdout = split(frame, float(training.holdout_fraction or 0), int(training.seed or 0))
        self._check_slices(spec, holdout)

        champion = hook.get_alias_version(name)
        baseline = str(champion.version) if champion is not None else None
        error, new, predictions = self._score_both(hook, spec, version, run_id, champion, holdout, training)
        importance = (
            self._importance(spec, new, training.task, int(training.seed or 0)) if error is None else None
        )
        decision = decide(
            evaluation=spec,
            challenger_version=version,
            baseline_version=baseline,
            error=error,
            holdout=predictions,
            importance=importance,
        )
        self._log_rules(decision)
        doc = {
            **decision.to_dict(),
            "pipeline": name,
            "holdout_rows": int(len(holdout)),
            "snapshot_sha256": manifest["sha256"],
            "data_interval": self.judged_interval(context, manifest),
            "evaluation": spec.model_dump(),
            **self.lineage(context),
        }
        if importance is not None and "features" in importance:
            self._log_importance(hook, run_id, importance)
        html = decision_html(doc, f"Gate decision: {name} v{version}")
        uri = self.write_report(context, doc, html)
        hook.log_document(run_id, doc, DECISION_ARTIFACT)
        hook.log_text(run_id, html, DECISION_HTML_ARTIFACT)  # the same page, beside the JSON
        hook.set_version_tags(
            name,
            version,
            {"mlops.gate": decision.status, "mlops.gate_reasons": "; ".join(decision.reasons)[:4000]},
        )
        push_metrics("gate", name, context, doc)  # after the MLflow writes a retry repeats
        self.log.info(
            "gate decision for %s v%s: %s (%s)",
            name,
            version,
            decision.status.upper(),
            "; ".join(decision.reasons),
        )
        boot = doc["bootstrap"] or {}
        return {
            "promote": decision.promote,
            "status": decision.status,
            "model_name": name,
            "challenger_version": version,
            "baseline_version": decision.baseline_version,
            "reasons": decision.reasons,
            "metrics": doc["challenger_metrics"],
            "champion_metrics": doc["champion_metrics"],
            "bootstrap": {k: boot.get(k) for k in ("status", "metric", "estimate", "lower", "upper")},
            "rules_skipped": sum(r.verdict == "skip" for r in decision.rules),
            "report_uri": uri,
            "run_url": self.model.get("run_url", ""),
            "model_url": self.model.get("model_url", ""),
        }

    # -- steps -----------------------------------------------------------------------------------

    def _settings(self) -> Any:
        """The validated ``evaluation`` settings (after checking ``model`` is a training result)."""
        from pydantic import ValidationError

        from mlops_ops.config import EvaluationSpec

        if not isinstance(self.model, dict) or "version" not in self.model:
            raise AirflowFailException(
                f"model must be the training task's result with a 'version', got {self.model!r}"
            )
        try:
            return EvaluationSpec.model_validate(self.evaluation or {})
        except ValidationError as err:
            raise AirflowFailException(f"the evaluation settings are invalid: {err}") from None

    @staticmethod
    def _challenger(hook: Any, name: str, version: str) -> tuple[str, TrainingSpec]:
        """The challenger's run id and training spec (with the split's keys)."""
        challenger = hook.model_version(name, version)
        if not challenger.run_id:
            raise AirflowFailException(f"{name} v{version} has no MLflow run; was it trained by mlops-ops?")
        training = hook.load_training_spec(challenger.run_id, split=True)
        if training is None:
            raise AirflowFailException(
                f"{name} v{version} has no {TRAINING_SPEC_ARTIFACT}; was it trained by mlops-ops?"
            )
        return str(challenger.run_id), training

    @staticmethod
    def _check_slices(spec: Any, holdout: Any) -> None:
        absent = [s.column for s in spec.slices if s.column not in holdout.columns]
        if absent:
            raise AirflowFailException(
                f"evaluation.slices: column(s) {absent} are not in the holdout data, whose columns are "
                f"{list(holdout.columns)}; fix evaluation.slices"
            )

    def _score_both(
        self,
        hook: Any,
        spec: Any,
        version: str,
        run_id: str,
        champion: Any,
        holdout: Any,
        training: TrainingSpec,
    ) -> tuple[str | None, dict[str, Any] | None, Any]:
        """Challenger and champion predictions on the holdout; fails closed.

        :returns: (error, the challenger's predictions, ``HoldoutPredictions`` or None). An error
            scoring either model is recorded as the reason, not raised: the gate then rejects.
        """
        from mlops_ops.core.evaluation import HoldoutPredictions

        name = self.pipeline
        baseline = str(champion.version) if champion is not None else None
        error, new, old = None, None, None
        try:
            new = self._predict(hook, name, version, run_id, holdout, training)
        except Exception as err:  # fail closed: record the reason, reject
            self.log.exception("scoring the challenger failed")
            error = f"challenger v{version} could not be scored: {type(err).__name__}: {err}"
        if champion is not None and baseline is not None and baseline != version and error is None:
            try:
                old = self._predict(hook, name, baseline, champion.run_id or "", holdout, training)
            except Exception as err:
                self.log.exception("scoring the champion failed")
                error = (
                    f"champion v{baseline} could not be scored on this holdout ({type(err).__name__}: {err}); "
                    "rejecting, as the gate cannot compare. Promote by hand if intended"
                )
        if new is None or error is not None:
            return error, new, None
        predictions = HoldoutPredictions(
            task=training.task,
            y_true=new["y"],
            challenger=new["scores"],
            champion=old["scores"] if old is not None else None,
            columns={s.column: holdout[s.column].to_numpy() for s in spec.slices},
        )
        return error, new, predictions

    @staticmethod
    def _check_metrics_apply(spec: Any, task: str) -> None:
        wrong, allowed = spec.misapplied_metrics(task)
        if wrong:
            raise AirflowFailException(
                f"metric(s) {wrong} do not apply to a {task} model; set evaluation.primary_metric and the "
                f"thresholds to metrics among {list(allowed)}"
            )

    def _predict(
        self,
        hook: Any,
        name: str,
        version: str,
        run_id: str,
        holdout: Any,
        challenger_training: TrainingSpec,
    ) -> dict[str, Any]:
        """One model version's predictions on the holdout: its model, input frame, labels, scores."""
        from mlops_ops.core.evaluation import score_model
        from mlops_ops.core.features import FeatureSet
        from mlops_ops.core.training import prepare_features, prepare_target

        training = hook.load_training_spec(run_id)
        if training is None:
            raise ValueError(f"v{version} has no {TRAINING_SPEC_ARTIFACT}, so its input columns are unknown")
        feats = FeatureSet(training.numeric, training.categorical)
        model = hook.load_sklearn_model(model_version_uri(name, version))
        task = challenger_training.task
        schema = self.version_schema(run_id, training.raw)
        x = prepare_features(holdout, feats, schema, where=f"the holdout, read for v{version}")
        y = prepare_target(holdout, str(challenger_training.target), task).to_numpy()
        return {"model": model, "x": x, "y": y, "scores": score_model(model, x, task)}

    def _importance(self, spec: Any, new: dict[str, Any] | None, task: str, seed: int) -> Any:
        """The challenger's permutation importance; a failure is recorded, it does not gate."""
        from mlops_ops.core.evaluation import permutation_importance_report

        if not spec.permutation_importance or new is None:
            return None
        try:
            report = permutation_importance_report(
                new["model"],
                new["x"],
                new["y"],
                task=task,
                metric=spec.primary_metric,
                seed=seed,
                max_rows=IMPORTANCE_MAX_ROWS,
            )
        except Exception as err:  # explanatory only: record why, keep gating
            self.log.warning("permutation importance failed: %s: %s", type(err).__name__, err)
            return {"metric": spec.primary_metric, "error": f"{type(err).__name__}: {err}"}
        for item in report["features"]:
            self.log.info(
                "permutation importance of %s: %.4g (+/- %.2g) %s",
                item["feature"],
                item["importance"],
                item["std"],
                report["metric"],
            )
        return report

    @staticmethod
    def _log_importance(hook: Any, run_id: str, importance: dict[str, Any]) -> None:
        from mlops_ops.core.naming import IMPORTANCE_PREFIX, mlflow_keys

        hook.log_document(run_id, importance, IMPORTANCE_ARTIFACT)
        keys = mlflow_keys(IMPORTANCE_PREFIX, [f["feature"] for f in importance["features"]])
        hook.log_metrics(run_id, {keys[f["feature"]]: f["importance"] for f in importance["features"]})

    def _log_rules(self, decision: Any) -> None:
        for rule in decision.rules:
            (self.log.warning if rule.verdict == "fail" else self.log.info)(
                "gate %s %s [%s]: observed %s, threshold %s -> %s",
                rule.rule,
                rule.metric,
                rule.slice,
                rule.observed,
                rule.threshold,
                rule.verdict,
            )
        boot = decision.bootstrap or {}
        if boot.get("status") in ("pass", "fail"):
            self.log.info(
                "bootstrap %s: estimate %+.4f, %s%% CI [%+.4f, %+.4f], threshold lower > %+.4g -> %s",
                boot["metric"],
                boot["estimate"],
                f"{100 * boot['confidence']:g}",
                boot["lower"],
                boot["upper"],
                boot["threshold"],
                boot["status"],
            )
