"""DetectDriftOperator: a batch against a reference, column by column, and the champion's outputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from mlops_ops.artifacts import (
    PREDICTION_PROFILE_ARTIFACT,
    PROFILE_ARTIFACT,
    TRAINING_SPEC_ARTIFACT,
    TRAINING_SPEC_KEYS,
)
from mlops_ops.core.model_uri import model_version_uri
from mlops_ops.errors import parse_stored
from mlops_ops.hooks.pushgateway import push_metrics
from mlops_ops.links import MlflowRunLink, ReportLink
from mlops_ops.operators.base import MonitoringOperator, short_number

if TYPE_CHECKING:
    from airflow.sdk import Context


class DetectDriftOperator(MonitoringOperator):
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
        from mlops_ops.core.drift import detect_drift
        from mlops_ops.core.drift_report import render_drift_html

        config, spec = self._config()
        champion = self.champion()
        trained = self._trained_profile(champion)
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
        doc = self._document(context, champion, report, choice, profile, prediction)
        title = f"Drift of {self.pipeline} batch vs champion v{champion.version}"
        # with the prediction drift, if any
        html = render_drift_html(doc, title=title, reference=choice.describe())
        uri = self.write_report(context, doc, html)
        push_metrics("drift", self.pipeline, context, doc)
        _, run_url = self.log_monitoring_run(
            context, "drift", champion, _run_metrics(report, prediction), doc, html
        )
        self._log_verdict(report, config, doc["prediction_drift"], uri)
        return _result(report, prediction, champion, choice, uri, run_url)

    def _trained_profile(self, champion: Any) -> Any:
        """The champion's reference profile of its training data, logged at training."""
        from mlops_ops.core.drift import ReferenceProfile

        profile_doc = self.mlflow_hook.load_dict(champion.run_id, PROFILE_ARTIFACT)
        if profile_doc is None:
            raise AirflowFailException(
                f"champion v{champion.version} of {self.pipeline} has no {PROFILE_ARTIFACT}; retrain it "
                "with this version of mlops-ops so monitoring has a reference"
            )
        return parse_stored(
            f"{PROFILE_ARTIFACT} of champion v{champion.version} (run {champion.run_id})",
            ReferenceProfile.from_dict,
            profile_doc,
            "retrain the champion with this version of mlops-ops",
        )

    def _document(
        self, context: Context, champion: Any, report: Any, choice: Any, profile: Any, prediction: Any
    ) -> dict[str, Any]:
        """The drift report's JSON document."""
        from mlops_ops.hooks.storage import snapshot_uri_of

        return {
            "pipeline": self.pipeline,
            "champion_version": str(champion.version),
            "snapshot_uri": snapshot_uri_of(self.snapshot),
            "data_interval": self.judged_interval(context, snapshot=self.snapshot),
            **report.to_dict(),
            "reference": choice.to_dict(),
            "excluded_columns": dict(profile.excluded),
            "prediction": prediction.to_dict() if prediction is not None else None,
            "prediction_drift": bool(prediction and prediction.status == "drift"),
            **self.lineage(context),
        }

    def _log_verdict(self, report: Any, config: Any, prediction_drift: bool, uri: str) -> None:
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

    def _log_columns(self, report: Any) -> None:
        for col in sorted(report.columns, key=lambda c: -(c.effect or 0.0)):
            self.log.info(
                "%-24s %-4s stat=%s p_adj=%s effect=%s (threshold %s)%s",
                col.name,
                col.test,
                short_number(col.statistic),
                short_number(col.p_adjusted),
                short_number(col.effect),
                short_number(col.effect_threshold),
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

        from mlops_ops.core.reference import training_reason, unusable_reason

        if spec.kind == "training":
            why = training_reason(champion.version)
            return trained, self._training_choice(champion, trained, "training", why), None
        choice = self._windowed_choice(context, spec)
        unusable = unusable_reason(choice, rows=None, min_rows=min_rows)
        if unusable:
            return trained, self._fallback(champion, trained, choice, unusable), None
        frame = self._read_reference(spec, choice, trained)
        unusable = unusable_reason(choice, rows=len(frame), min_rows=min_rows)
        if unusable:
            return trained, self._fallback(champion, trained, choice, unusable), None
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
            window_reason,
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
        return ReferenceChoice(
            kind=spec.kind,
            requested=spec.kind,
            why=window_reason(
                spec.kind,
                batch,
                found,
                intervals,
                lag_days=spec.lag_days,
                seasons=spec.seasons,
                days=spec.days,
            ),
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
        from mlops_ops.core.reference import fallback_reason

        text = fallback_reason(choice, champion.version, why)
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


def _run_metrics(report: Any, prediction: Any) -> dict[str, Any]:
    """The drift check's MLflow metrics."""
    metrics: dict[str, Any] = {
        "drift.rows": report.rows,
        "drift.drifted_share": report.drifted_share,
        "drift.n_drifted": len(report.drifted_columns),
        "drift.reference_rows": report.reference_rows,
    }
    if prediction is not None and prediction.columns:
        metrics["drift.prediction_effect"] = prediction.columns[0].effect
    return metrics


def _result(
    report: Any, prediction: Any, champion: Any, choice: Any, uri: str, run_url: str
) -> dict[str, Any]:
    """The drift task's XCom value (docs/architecture.md, "XCom payloads")."""
    return {
        "status": report.status,
        "drifted": report.drifted,
        "drifted_columns": list(report.drifted_columns),
        "drifted_share": report.drifted_share,
        "rows": report.rows,
        "prediction_drift": bool(prediction and prediction.status == "drift"),
        "prediction_status": prediction.status if prediction is not None else None,
        "champion_version": str(champion.version),
        "reference": choice.kind,
        "reasons": list(report.reasons),
        "report_uri": uri,
        "run_url": run_url,
    }
