"""Monitoring operators: drift and performance of the serving champion, and the retrain request."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from mlops_ops.artifacts import (
    DECISION_ARTIFACT,
    PREDICTION_PROFILE_ARTIFACT,
    PROFILE_ARTIFACT,
    TRAINING_SPEC_ARTIFACT,
    TRAINING_SPEC_KEYS,
)
from mlops_ops.assets import retrain_asset
from mlops_ops.core.jsonsafe import json_safe
from mlops_ops.core.model_uri import model_version_uri
from mlops_ops.errors import parse_stored
from mlops_ops.links import MlflowRunLink, ReportLink
from mlops_ops.operators.base import MlopsBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class _ChampionMixin(MlopsBaseOperator):
    """Resolve the serving champion once per task (a promotion mid-task cannot mix versions)."""

    def champion(self) -> Any:
        version = self.mlflow_hook.get_alias_version(self.pipeline)
        if version is None:
            raise AirflowSkipException(
                f"{self.pipeline} has no champion yet: nothing to monitor. Run {self.pipeline}_training first"
            )
        return version

    def _log_monitoring_run(
        self,
        context: Context,
        kind: str,
        champion: Any,
        metrics: dict[str, Any],
        document: dict[str, Any],
        html: str | None,
    ) -> tuple[str, str]:
        """One MLflow run per check, in the pipeline's experiment, tagged ``mlops.kind``."""
        hook = self.mlflow_hook
        client = hook.client
        experiment_id = hook.ensure_experiment(self.pipeline)
        ds = context.get("ds") or str(context["dag_run"].run_after)[:10]
        tags = {
            **self.lineage(context),
            "mlops.pipeline": self.pipeline,
            "mlops.kind": f"monitoring.{kind}",
            "mlops.champion_version": str(champion.version),
            "mlops.status": str(document.get("status")),
        }
        run = client.create_run(experiment_id, tags=tags, run_name=f"{kind}-{ds}")
        run_id = run.info.run_id
        try:
            for key, value in metrics.items():
                if value is not None:
                    client.log_metric(run_id, key, float(value))
            client.log_dict(run_id, json_safe(document), f"monitoring/{kind}.json")
            if html is not None:
                client.log_text(run_id, html, f"monitoring/{kind}.html")
        finally:
            client.set_terminated(run_id)
        context["ti"].xcom_push(key="mlflow_run_url", value=hook.run_url(experiment_id, run_id))
        return run_id, hook.run_url(experiment_id, run_id)


class DetectDriftOperator(_ChampionMixin):
    """Compare a batch with a reference, column by column, and the champion's predictions on it.

    The reference is the champion's training data (its reference profile, logged at training) by
    default; ``drift.reference`` can make it the same period one season earlier or a rolling
    window of recent days, read from dated partitions (see ``mlops_ops.core.reference``). The
    batch is coerced to the champion's schema; per column a binned Kolmogorov-Smirnov test (numeric) or a
    chi-square test (categorical) and a missing-rate test, Holm-corrected, and an effect size that
    must also reach its threshold (see docs/monitoring.md); ``drift.rule`` makes the dataset verdict (any drifted column,
    a share of the columns, or a share of the champion's permutation importance). With
    ``prediction=True`` the champion also scores the batch and its outputs are tested against its
    outputs on the reference. The report (JSON, with the reference used under ``reference``, and
    HTML) is stored and logged to MLflow. No champion: skipped.

    :param snapshot: the batch's ingest result or snapshot URI (templated).
    :param drift: drift settings (``monitoring.drift`` of a pipeline spec): ``alpha``, ``delta``,
        ``categorical_delta``, ``missing_delta``, ``correction``, ``rule``, ``drift_share``,
        ``importance_share``, ``critical_columns``, ``min_rows``, ``prediction``, ``reference``.
    """

    template_fields: Sequence[str] = ("snapshot",)
    operator_extra_links = (ReportLink(), MlflowRunLink())

    def __init__(self, *, snapshot: Any, drift: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.snapshot = snapshot
        self.drift = drift

    def _config(self) -> tuple[Any, Any]:
        from pydantic import ValidationError

        from mlops_ops.config import DriftSpec
        from mlops_ops.core.drift import DriftConfig

        try:
            spec = DriftSpec.model_validate(self.drift or {})
            config = DriftConfig(
                alpha=spec.alpha,
                delta=spec.delta,
                categorical_delta=spec.categorical_delta,
                missing_delta=spec.missing_delta,
                correction=spec.correction,
                drift_share=spec.drift_share,
                critical_columns=tuple(spec.critical_columns),
                min_rows=spec.min_rows,
                rule="share" if spec.rule == "share" else "any",  # importance: see _with_importance
                importance_share=spec.importance_share,
            )
        except (ValidationError, ValueError) as err:
            raise AirflowFailException(f"drift settings are invalid: {err}") from None
        if spec.reference.kind != "training" and not spec.reference.uri:
            raise AirflowFailException(
                f"drift settings are invalid: a {spec.reference.kind} reference needs reference.uri, the "
                "dated partitions to read it from"
            )
        return config, spec

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_ops.core.drift import ReferenceProfile, detect_drift
        from mlops_ops.core.drift_report import render_drift_html
        from mlops_ops.hooks.storage import snapshot_uri_of

        config, spec = self._config()
        champion = self.champion()
        hook = self.mlflow_hook
        profile_doc = hook.load_dict(champion.run_id, PROFILE_ARTIFACT)
        if profile_doc is None:
            raise AirflowFailException(
                f"champion v{champion.version} of {self.pipeline} has no {PROFILE_ARTIFACT}; retrain it "
                "with this version of mlops-ops so monitoring has a reference"
            )
        trained = parse_stored(
            f"{PROFILE_ARTIFACT} of champion v{champion.version} (run {champion.run_id})",
            ReferenceProfile.from_dict,
            profile_doc,
            "retrain the champion with this version of mlops-ops",
        )
        config, rule_note = self._with_importance(config, spec.rule, champion)
        profile, choice, reference_frame = self._reference(
            context, champion, trained, spec.reference, config.min_rows
        )
        try:
            batch = self._coerced_batch(champion, profile)
            report = detect_drift(profile, batch, config)
        except ValueError as err:  # e.g. a profile column missing from the batch, a value off-schema
            raise AirflowFailException(f"drift check of {self.pipeline} cannot run: {err}") from None
        report.reasons[:0] = [f"reference: {choice.describe()}: {choice.why}", *rule_note]
        for column, why in profile.excluded.items():
            self.log.info("column %r is not tested for drift: %s", column, why)
        self._log_columns(report)

        prediction = None
        if spec.prediction and report.status != "insufficient_data":
            prediction = self._prediction_drift(champion, config, reference_frame)
        prediction_drift = bool(prediction and prediction.status == "drift")
        doc = {
            "pipeline": self.pipeline,
            "champion_version": str(champion.version),
            "snapshot_uri": snapshot_uri_of(self.snapshot),
            **report.to_dict(),
            "reference": choice.to_dict(),
            "excluded_columns": dict(profile.excluded),
            "prediction": prediction.to_dict() if prediction is not None else None,
            "prediction_drift": prediction_drift,
            **self.lineage(context),
        }
        title = f"Drift of {self.pipeline} batch vs champion v{champion.version}"
        # with the prediction drift, if any
        html = render_drift_html(doc, title=title, reference=choice.describe())
        uri = self.write_report(context, doc, html)
        metrics = {
            "drift.rows": report.rows,
            "drift.drifted_share": report.drifted_share,
            "drift.n_drifted": len(report.drifted_columns),
            "drift.reference_rows": report.reference_rows,
        }
        if prediction is not None and prediction.columns:
            metrics["drift.prediction_effect"] = prediction.columns[0].effect
        _, run_url = self._log_monitoring_run(context, "drift", champion, metrics, doc, html)
        self.log.info(
            "drift status %s: %d of %d column(s) drifted (rule %s)%s; report %s",
            report.status,
            len(report.drifted_columns),
            len(report.columns),
            config.rule,
            "; PREDICTIONS DRIFTED" if prediction_drift else "",
            uri,
        )
        for reason in report.reasons:
            self.log.info("  %s", reason)
        return {
            "status": report.status,
            "drifted": report.drifted,
            "drifted_columns": list(report.drifted_columns),
            "drifted_share": report.drifted_share,
            "rows": report.rows,
            "prediction_drift": prediction_drift,
            "prediction_status": prediction.status if prediction is not None else None,
            "champion_version": str(champion.version),
            "reference": choice.kind,
            "reasons": list(report.reasons),
            "report_uri": uri,
            "run_url": run_url,
        }

    def _log_columns(self, report: Any) -> None:
        for col in sorted(report.columns, key=lambda c: -(c.effect or 0.0)):
            self.log.info(
                "%-24s %-4s stat=%s p_adj=%s effect=%s (threshold %s)%s",
                col.name,
                col.test,
                _r(col.statistic),
                _r(col.p_adjusted),
                _r(col.effect),
                _r(col.effect_threshold),
                "  DRIFT" if col.drifted else "",
            )

    def _with_importance(self, config: Any, rule: str, champion: Any) -> tuple[Any, list[str]]:
        """``rule: importance`` with the champion's logged permutation importance; without it, the
        rule ``any``, and a sentence saying so."""
        import dataclasses

        from mlops_ops.artifacts import IMPORTANCE_ARTIFACT

        if rule != "importance":
            return config, []
        doc = self.mlflow_hook.load_dict(champion.run_id, IMPORTANCE_ARTIFACT) or {}
        weights = {str(f["feature"]): float(f["importance"]) for f in doc.get("features") or []}
        if not weights:
            why = doc.get("error") or f"champion v{champion.version} has no {IMPORTANCE_ARTIFACT}"
            note = (
                f"rule 'importance' needs the champion's permutation importance, but {why} "
                "(evaluation.permutation_importance): judged by the rule 'any' instead"
            )
            self.log.warning("%s", note)
            return config, [note]
        return dataclasses.replace(config, rule="importance", importance=weights), []

    def _reference(
        self, context: Context, champion: Any, trained: Any, spec: Any, min_rows: int
    ) -> tuple[Any, Any, Any]:
        """The reference profile, what it is (a ``ReferenceChoice``) and, when read from
        partitions, its frame (for the prediction reference)."""

        if spec.kind == "training":
            why = (
                f"reference.kind is 'training' (the default): the batch is compared with the data "
                f"champion v{champion.version} was trained on"
            )
            return trained, self._training_choice(champion, trained, "training", why), None
        choice = self._windowed_choice(context, spec)
        if not choice.files:
            return trained, self._fallback(champion, trained, choice, "no partition is dated in it"), None
        frame = self._read_reference(spec, choice, trained)
        if len(frame) < min_rows:
            why = f"it holds {len(frame):,} rows, fewer than min_rows {min_rows:,}"
            return trained, self._fallback(champion, trained, choice, why), None
        from mlops_ops.core.drift import build_reference_profile

        choice.rows = len(frame)
        # the reference partitions are a later read too: coerced to the champion's schema
        frame = self._coerce_profiled(frame, champion, trained, where=f"drift reference {choice.source}")
        profile = build_reference_profile(
            frame, numeric=list(trained.numeric), categorical=list(trained.categorical)
        )
        self.log.info("reference: %s: %s", choice.describe(), choice.why)
        return profile, choice, frame

    def _windowed_choice(self, context: Context, spec: Any) -> Any:
        """The seasonal or rolling window of this batch, and the partitions dated in it."""
        import os

        from mlops_ops.core.reference import (
            ReferenceChoice,
            data_interval,
            reference_intervals,
            select_partitions,
        )
        from mlops_ops.hooks.storage import expand_source, read_json, snapshot_uri_of, to_path

        fmt = spec.date_format or "%Y-%m-%d"
        manifest = read_json(to_path(snapshot_uri_of(self.snapshot), self.storage.conn_id) / "manifest.json")
        when = context.get("logical_date") or context["dag_run"].run_after
        batch, found = data_interval(manifest.get("source"), date_format=fmt, default_day=when.date())
        assert batch is not None
        try:
            intervals = reference_intervals(
                spec.kind, batch, lag_days=spec.lag_days, seasons=spec.seasons, days=spec.days
            )
            uri = os.path.expandvars(str(spec.uri))
            files = {str(f): f for f in expand_source(uri, spec.conn_id_storage)}
            chosen = select_partitions(list(files), intervals, fmt)
        except ValueError as err:  # DataError included
            raise AirflowFailException(
                f"the drift reference of {self.pipeline} cannot be read: {err}"
            ) from None
        if spec.kind == "seasonal":
            back = f"{spec.lag_days} days earlier" + (
                f", in each of {spec.seasons} past seasons" if spec.seasons > 1 else ""
            )
            why = (
                f"reference.kind is 'seasonal': the batch ({batch}, from {found}) is compared with "
                f"{intervals[0].days} day(s) around the same period {back}, so a recurring cycle is not "
                "taken for drift"
            )
        else:
            why = (
                f"reference.kind is 'rolling': the batch ({batch}, from {found}) is compared with the "
                f"{spec.days} day(s) before it, so slow change is absorbed and a sudden one alarms"
            )
        return ReferenceChoice(
            kind=spec.kind,
            requested=spec.kind,
            why=why,
            intervals=intervals,
            batch=batch,
            batch_dates_from=found,
            files=sorted(chosen),
            n_files=len(chosen),
            source=uri,
            settings=spec.model_dump(exclude={"conn_id_storage"}),
        )

    def _read_reference(self, spec: Any, choice: Any, trained: Any) -> Any:
        """The reference partitions as one normalised frame; every profiled column must be there."""
        from mlops_ops.core import data
        from mlops_ops.hooks.storage import to_path

        frames = []
        try:
            for name in choice.files:
                path = to_path(name, spec.conn_id_storage)
                with path.open("rb") as fh:
                    frames.append(
                        (name, data.read_frame(name, fh, data.detect_format(path.name, spec.format)))
                    )
            frame = data.normalise(data.combine(frames))
        except data.DataError as err:
            raise AirflowFailException(
                f"the drift reference of {self.pipeline} cannot be read: {err}"
            ) from None
        missing = [c for c in trained.columns if c not in frame.columns]
        if missing:
            raise AirflowFailException(
                f"the drift reference ({choice.source}, {len(choice.files)} file(s) dated "
                f"{', '.join(str(i) for i in choice.intervals)}) lacks the champion's column(s) {missing}; "
                "point monitoring.drift.reference.uri at partitions with the training columns"
            )
        return frame

    def _fallback(self, champion: Any, trained: Any, choice: Any, why: str) -> Any:
        """A windowed reference that cannot be used: the champion's training data, saying why."""
        where = ", ".join(str(i) for i in choice.intervals)
        text = (
            f"the {choice.kind} reference ({choice.source}, {where}) cannot be used: {why}; the batch "
            f"is compared with the data champion v{champion.version} was trained on instead"
        )
        self.log.warning("%s", text)
        fallback = self._training_choice(champion, trained, choice.kind, text)
        fallback.fallback = True
        fallback.batch, fallback.batch_dates_from = choice.batch, choice.batch_dates_from
        fallback.settings = choice.settings
        return fallback

    def _training_choice(self, champion: Any, trained: Any, requested: str, why: str) -> Any:
        """The champion's training data as a reference, with its data interval when known."""
        from mlops_ops.core.reference import ReferenceChoice, data_interval
        from mlops_ops.hooks.storage import read_json, to_path

        choice = ReferenceChoice(kind="training", requested=requested, why=why, rows=trained.rows)
        spec = self.mlflow_hook.load_dict(champion.run_id, TRAINING_SPEC_ARTIFACT) or {}
        if spec.get("snapshot_uri"):
            choice.source = str(spec["snapshot_uri"])
            try:
                manifest = read_json(to_path(choice.source, self.storage.conn_id) / "manifest.json")
            except (OSError, ValueError) as err:  # explanatory only
                self.log.info("training snapshot manifest not read: %s", err)
            else:
                interval, _ = data_interval(manifest.get("source"))
                choice.intervals = [interval] if interval else []
        return choice

    def _schema(self, champion: Any, profile: Any = None) -> Any:
        """The champion's frozen schema: in its profile, its schema.json, or its feature lists."""
        from mlops_ops.core.schema import Schema

        if profile is not None and profile.schema is not None:
            return Schema.from_dict(profile.schema)
        return self.version_schema(
            champion.run_id, self.mlflow_hook.load_dict(champion.run_id, TRAINING_SPEC_ARTIFACT)
        )

    def _coerced_batch(self, champion: Any, profile: Any) -> Any:
        """The batch with every profiled feature coerced to the champion's schema (never re-inferred)."""
        frame, manifest = self.read_snapshot(self.snapshot)
        return self._coerce_profiled(frame, champion, profile, where=f"snapshot {manifest['sha256'][:12]}")

    def _coerce_profiled(self, frame: Any, champion: Any, profile: Any, *, where: str) -> Any:
        """``frame``'s profiled columns, each feature coerced to the champion's schema."""
        from mlops_ops.core.schema import coerce_column

        schema = self._schema(champion, profile)
        present = [c for c in schema.features if c in frame.columns and c in profile.columns]
        types = {c.name: c.type for c in schema.columns}
        batch = frame.loc[:, [c for c in profile.columns if c in frame.columns]].copy()
        for name in present:
            batch[name] = coerce_column(frame[name], types[name], column=name, where=where)
        for name in [c for c in profile.columns if c in frame.columns and c not in present]:
            batch[name] = frame[name]
        missing = [c for c in profile.columns if c not in frame.columns]
        if missing:
            batch = frame  # detect_drift names the missing columns
        return batch

    def _prediction_drift(self, champion: Any, config: Any, reference_frame: Any) -> Any:
        import dataclasses

        from mlops_ops.core.drift import ReferenceProfile, detect_drift
        from mlops_ops.core.monitoring import build_prediction_profile, prediction_frame

        hook = self.mlflow_hook
        doc = hook.load_dict(champion.run_id, PREDICTION_PROFILE_ARTIFACT)
        spec = hook.load_dict(champion.run_id, TRAINING_SPEC_ARTIFACT, required=TRAINING_SPEC_KEYS)
        if doc is None or spec is None:
            self.log.warning(
                "champion v%s has no prediction profile: prediction drift not checked", champion.version
            )
            return None
        frame, _ = self.read_snapshot(self.snapshot)
        stored = (
            parse_stored(
                f"{PREDICTION_PROFILE_ARTIFACT} of champion v{champion.version} (run {champion.run_id})",
                ReferenceProfile.from_dict,
                doc,
                "retrain the champion with this version of mlops-ops",
            )
            if reference_frame is None
            else None
        )
        model = hook.load_sklearn_model(model_version_uri(self.pipeline, champion.version))
        try:
            schema = self._schema(champion)
            predictions = prediction_frame(model, schema.coerce(frame), spec["task"])
            # a windowed reference: the champion's outputs on that window, not on its training data
            if stored is not None:
                reference = stored
            else:
                reference = build_prediction_profile(model, schema.coerce(reference_frame), spec["task"])
        except Exception as err:
            raise AirflowFailException(
                f"champion v{champion.version} could not score the batch for prediction drift: {err}"
            ) from None
        cfg = dataclasses.replace(config, critical_columns=(), rule="any", importance=None, columns=None)
        return detect_drift(reference, predictions, cfg)


class CheckModelPerformanceOperator(_ChampionMixin):
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.snapshot = snapshot
        self.target = target
        self.metric = metric
        self.tolerance = tolerance
        self.floor = floor
        self.min_rows = min_rows

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_ops.config import METRIC_DIRECTIONS
        from mlops_ops.core.evaluation import compute_metrics, score_model
        from mlops_ops.core.monitoring import PerformanceCheck, check_performance
        from mlops_ops.core.reports import render_html

        if self.metric not in METRIC_DIRECTIONS:
            raise AirflowFailException(f"unknown metric {self.metric!r}; known: {sorted(METRIC_DIRECTIONS)}")
        champion = self.champion()
        hook = self.mlflow_hook
        frame, manifest = self.read_snapshot(self.snapshot)
        spec = hook.load_dict(champion.run_id, TRAINING_SPEC_ARTIFACT, required=TRAINING_SPEC_KEYS)
        if spec is None:
            raise AirflowFailException(f"champion v{champion.version} has no {TRAINING_SPEC_ARTIFACT}")
        baseline = self._baseline(champion)
        if self.target not in frame.columns:
            check = PerformanceCheck(
                "unlabelled", self.metric, None, baseline, self.tolerance, self.floor, 0, self.min_rows
            )
            check.reasons.append(f"the batch has no {self.target!r} column: performance not judged")
        else:
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
                model = hook.load_sklearn_model(model_version_uri(self.pipeline, champion.version))
                try:
                    x = self.version_schema(champion.run_id, spec).coerce(
                        labelled, where=f"snapshot {manifest['sha256'][:12]}"
                    )
                    scores = score_model(model, x, spec["task"])
                    value = compute_metrics(spec["task"], labelled[self.target].to_numpy(), scores).get(
                        self.metric
                    )
                except (KeyError, ValueError, AttributeError, TypeError) as err:
                    raise AirflowFailException(
                        f"champion v{champion.version} could not be scored on the batch "
                        f"({type(err).__name__}: {err}); check the batch's columns or retrain the champion"
                    ) from None
            check = check_performance(
                metric=self.metric,
                value=value,
                baseline=baseline,
                rows=len(labelled),
                tolerance=self.tolerance,
                floor=self.floor,
                min_rows=self.min_rows,
            )
        doc = {
            "pipeline": self.pipeline,
            "champion_version": str(champion.version),
            "snapshot_sha256": manifest["sha256"],
            **check.to_dict(),
            **self.lineage(context),
        }
        html = render_html(
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
        uri = self.write_report(context, doc, html)
        metrics = {f"performance.{self.metric}": check.value, "performance.rows": check.rows}
        _, run_url = self._log_monitoring_run(context, "performance", champion, metrics, doc, html)
        self.log.info(
            "performance %s: %s = %s vs %s at promotion (tolerance %s, floor %s) on %d labelled row(s)",
            check.status,
            self.metric,
            _r(check.value),
            _r(check.baseline),
            self.tolerance,
            self.floor,
            check.rows,
        )
        return {**check.to_dict(), "report_uri": uri, "run_url": run_url}

    def _baseline(self, champion: Any) -> float | None:
        """The metric the champion was promoted with (its gate decision), else its holdout metric."""
        hook = self.mlflow_hook
        decision = hook.load_dict(champion.run_id, DECISION_ARTIFACT)
        for key in ("challenger_metrics", "metrics"):
            value = ((decision or {}).get(key) or {}).get(self.metric)
            if value is not None:
                return float(value)
        metrics = hook.client.get_run(champion.run_id).data.metrics
        value = metrics.get(f"holdout_{self.metric}", metrics.get(self.metric))
        return float(value) if value is not None else None


class RequestRetrainOperator(MlopsBaseOperator):
    """Apply the retrain policy to the monitoring results; request a retrain by an asset event.

    A trigger (data or prediction drift, a performance drop) requests a retrain unless one was
    requested less than ``cooldown_hours`` before this batch (one incident, one retrain). A request
    is a write-once record under ``retrain_requests/`` and the ``mlops://<pipeline>/retrain`` asset
    event (extra: ``reason``, ``summary``), on which the training DAG is scheduled. Time is the
    batch's logical date, so a backfill behaves as the live schedule would. No request: skipped.

    :param drift: the drift task's result (templated); None if not checked.
    :param performance: the performance task's result (templated); None if not checked.
    :param on_drift: drift triggers a retrain.
    :param on_performance: a performance drop triggers a retrain.
    :param cooldown_hours: no new request this long after the last one.
    """

    template_fields: Sequence[str] = ("drift", "performance")
    operator_extra_links = (ReportLink(),)

    def __init__(
        self,
        *,
        drift: Any = None,
        performance: Any = None,
        on_drift: bool = True,
        on_performance: bool = True,
        cooldown_hours: float = 72.0,
        **kwargs: Any,
    ) -> None:
        if "outlets" not in kwargs and "pipeline" in kwargs:
            kwargs["outlets"] = [retrain_asset(kwargs["pipeline"])]
        super().__init__(**kwargs)
        self.drift = drift
        self.performance = performance
        self.on_drift = on_drift
        self.on_performance = on_performance
        self.cooldown_hours = cooldown_hours

    def execute(self, context: Context) -> dict[str, Any]:
        import datetime as dt

        from mlops_ops.core.monitoring import decide_retrain
        from mlops_ops.core.reports import render_html
        from mlops_ops.hooks.storage import json_bytes, read_json, write_once

        now = context.get("logical_date") or context["dag_run"].run_after
        now = now.astimezone(dt.UTC)
        requests = self.storage.base / "retrain_requests"
        ti = context["ti"]
        last, own = None, None
        if requests.exists():
            for path in sorted(requests.glob("*.json"), key=str):
                doc = read_json(path)
                at = dt.datetime.fromisoformat(doc["requested_at"])
                if doc.get("airflow.run_id") == ti.run_id and doc.get("airflow.dag_id") == ti.dag_id:
                    own = doc  # a retry of this run: its request stands
                elif at <= now and (last is None or at > last):
                    last = at
        decision = decide_retrain(
            drift=_as_dict(self.drift),
            performance=_as_dict(self.performance),
            on_drift=self.on_drift,
            on_performance=self.on_performance,
            cooldown_hours=float(self.cooldown_hours),
            now=now,
            last_request_at=last,
        )
        doc = {
            "pipeline": self.pipeline,
            **decision.to_dict(),
            "at": now.isoformat(),
            **self.lineage(context),
        }
        html = render_html(
            f"Retrain decision for {self.pipeline}",
            "retrain requested" if decision.retrain else "no retrain",
            {
                "decision": "retrain requested" if decision.retrain else "no retrain",
                "reason": decision.reason,
                "triggers": "; ".join(decision.triggers) or "none",
                "batch time": now.isoformat(),
                "cooldown (hours)": self.cooldown_hours,
            },
            document=doc,
        )
        uri = self.write_report(context, doc, html)
        if own is not None:
            self.log.info(
                "this run already requested a retrain at %s; keeping that request", own["requested_at"]
            )
            decision.retrain = True
            decision.reason = own["reason"]
        if not decision.retrain:
            self.log.info("no retrain: %s", decision.reason)
            raise AirflowSkipException(f"no retrain requested: {decision.reason}")
        record = {
            "pipeline": self.pipeline,
            "requested_at": now.isoformat(),
            "reason": decision.reason,
            "summary": decision.summary,
            "report_uri": uri,
            **self.lineage(context),
        }
        if own is None:
            path = requests / f"{now.strftime('%Y%m%dT%H%M%S.%fZ')}.json"
            if not write_once(path, json_bytes(record)):
                raise AirflowFailException(
                    f"a retrain request for {now.isoformat()} already exists at {path}; refusing a second one"
                )
        summary = _short_summary(decision.summary)
        for asset in self.outlets:
            if getattr(asset, "uri", "").endswith("/retrain"):
                context["outlet_events"][asset].extra = {
                    "reason": decision.reason,
                    "summary": summary,
                    "requested_at": now.isoformat(),
                    "monitoring_run_id": ti.run_id,
                }
        self.log.info("retrain requested for %s: %s", self.pipeline, decision.reason)
        return {
            "retrain": True,
            "reason": decision.reason,
            "requested_at": now.isoformat(),
            "report_uri": uri,
        }


def _as_dict(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _short_summary(summary: dict[str, Any]) -> str:
    parts = []
    drift = summary.get("drift") or {}
    if drift:
        cols = drift.get("drifted_columns") or []
        parts.append(f"drift {drift.get('status')}: {', '.join(cols[:8]) or 'no columns'}")
    perf = summary.get("performance") or {}
    if perf:
        parts.append(f"performance {perf.get('status')}: {perf.get('metric')} {_r(perf.get('value'))}")
    return "; ".join(parts)


def _r(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
