"""EvaluateModelOperator: challenger vs champion on one holdout, through the gate. Read-only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from mlops_ops.links import MlflowModelVersionLink, MlflowRunLink, ReportLink
from mlops_ops.operators.base import MlopsBaseOperator
from mlops_ops.operators.train import TRAINING_SPEC_ARTIFACT

if TYPE_CHECKING:
    from airflow.sdk import Context

DECISION_ARTIFACT = "gate/decision.json"


class EvaluateModelOperator(MlopsBaseOperator):
    """Score the challenger and the serving champion on the same holdout and apply the gate.

    The holdout is the held-out side of the challenger's training snapshot (the same seeded row
    hash as training), so neither the challenger nor, for rows already held out before, the
    champion has trained on it. The gate applies value thresholds, and change thresholds against
    the champion; it fails closed (a missing metric or a scoring error rejects) and records
    "no baseline" when no champion exists. The decision is stored as JSON and HTML, logged to the
    challenger's MLflow run and tagged on its version. The registry is not changed.

    :param model: the training task's result (``version``, ``run_id``) (templated).
    :param evaluation: the spec's ``evaluation`` section: ``primary_metric``, ``thresholds``
        (``{metric: {lower, upper}}``), ``change_thresholds`` (``{metric: {absolute, relative}}``).
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
        from pydantic import ValidationError

        from mlops_ops.config import EvaluationSpec
        from mlops_ops.core.evaluation import decide
        from mlops_ops.core.reports import decision_html
        from mlops_ops.core.training import split

        if not isinstance(self.model, dict) or "version" not in self.model:
            raise AirflowFailException(
                f"model must be the training task's result with a 'version', got {self.model!r}"
            )
        try:
            spec = EvaluationSpec.model_validate(self.evaluation or {})
        except ValidationError as err:
            raise AirflowFailException(f"the evaluation settings are invalid: {err}") from None
        hook = self.mlflow_hook
        name, version = self.pipeline, str(self.model["version"])
        challenger = hook.client.get_model_version(name, version)
        if not challenger.run_id:
            raise AirflowFailException(f"{name} v{version} has no MLflow run; was it trained by mlops-ops?")
        run_id: str = challenger.run_id
        training = hook.load_dict(run_id, TRAINING_SPEC_ARTIFACT)
        if training is None:
            raise AirflowFailException(
                f"{name} v{version} has no {TRAINING_SPEC_ARTIFACT}; was it trained by mlops-ops?"
            )
        self._check_metrics_apply(spec, training["task"])
        frame, manifest = self.read_snapshot(self.snapshot or training["snapshot_uri"])
        _, holdout = split(frame, float(training["holdout_fraction"]), int(training["seed"]))

        champion = hook.get_alias_version(name)
        baseline = str(champion.version) if champion is not None else None
        error, challenger_metrics, champion_metrics = None, None, None
        try:
            challenger_metrics = self._score(hook, name, version, run_id, holdout, training)
        except Exception as err:  # fail closed: record the reason, reject
            self.log.exception("scoring the challenger failed")
            error = f"challenger v{version} could not be scored: {type(err).__name__}: {err}"
        if champion is not None and baseline is not None and baseline != version and error is None:
            try:
                champion_metrics = self._score(hook, name, baseline, champion.run_id or "", holdout, training)
            except Exception as err:
                self.log.exception("scoring the champion failed")
                error = (
                    f"champion v{baseline} could not be scored on this holdout ({type(err).__name__}: {err}); "
                    "rejecting, as the gate cannot compare. Promote by hand if intended"
                )
        decision = decide(
            challenger_metrics=challenger_metrics,
            champion_metrics=champion_metrics,
            evaluation=spec,
            challenger_version=version,
            baseline_version=baseline if baseline != version else None,
            error=error,
        )
        if baseline == version:  # re-evaluating the serving version: nothing to promote
            decision.baseline_version = baseline
            decision.promote = False
            decision.reasons = [f"v{version} is already the champion: nothing to deploy"]
        for rule in decision.rules:
            (self.log.info if rule.verdict == "pass" else self.log.warning)(
                "gate %s %s [%s]: observed %s, threshold %s -> %s",
                rule.rule,
                rule.metric,
                rule.slice,
                rule.observed,
                rule.threshold,
                rule.verdict,
            )
        doc = {
            **decision.to_dict(),
            "pipeline": name,
            "holdout_rows": int(len(holdout)),
            "snapshot_sha256": manifest["sha256"],
            "evaluation": spec.model_dump(),
            **self.lineage(context),
        }
        uri = self.write_report(context, doc, decision_html(doc, f"Gate decision: {name} v{version}"))
        hook.client.log_dict(run_id, doc, DECISION_ARTIFACT)
        hook.client.set_model_version_tag(name, version, "mlops.gate", decision.status)
        hook.client.set_model_version_tag(
            name, version, "mlops.gate_reasons", "; ".join(decision.reasons)[:4000]
        )
        self.log.info(
            "gate decision for %s v%s: %s (%s)",
            name,
            version,
            decision.status.upper(),
            "; ".join(decision.reasons),
        )
        return {
            "promote": decision.promote,
            "status": decision.status,
            "model_name": name,
            "challenger_version": version,
            "baseline_version": decision.baseline_version,
            "reasons": decision.reasons,
            "metrics": decision.challenger_metrics,
            "champion_metrics": decision.champion_metrics,
            "report_uri": uri,
            "run_url": self.model.get("run_url", ""),
            "model_url": self.model.get("model_url", ""),
        }

    @staticmethod
    def _check_metrics_apply(spec: Any, task: str) -> None:
        wrong, allowed = spec.misapplied_metrics(task)
        if wrong:
            raise AirflowFailException(
                f"metric(s) {wrong} do not apply to a {task} model; set evaluation.primary_metric and the "
                f"thresholds to metrics among {list(allowed)}"
            )

    def _score(
        self,
        hook: Any,
        name: str,
        version: str,
        run_id: str,
        holdout: Any,
        challenger_training: dict[str, Any],
    ) -> dict[str, float]:
        from mlops_ops.core.data import FeatureSet
        from mlops_ops.core.evaluation import compute_metrics, score_model
        from mlops_ops.core.training import prepare_features, prepare_target

        training = hook.load_dict(run_id, TRAINING_SPEC_ARTIFACT)
        if training is None:
            raise ValueError(f"v{version} has no {TRAINING_SPEC_ARTIFACT}, so its input columns are unknown")
        feats = FeatureSet(tuple(training["features"]["numeric"]), tuple(training["features"]["categorical"]))
        model = hook.load_sklearn_model(f"models:/{name}/{version}")
        task = challenger_training["task"]
        x = prepare_features(holdout, feats)
        y = prepare_target(holdout, challenger_training["target"], task)
        return compute_metrics(task, y.to_numpy(), score_model(model, x, task))
