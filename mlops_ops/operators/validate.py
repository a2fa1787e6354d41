"""ValidateDataOperator: Great Expectations validation of a snapshot."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from mlops_ops.artifacts import PROFILE_ARTIFACT
from mlops_ops.hooks.pushgateway import push_metrics
from mlops_ops.links import ReportLink
from mlops_ops.operators.base import MlopsBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class ValidateDataOperator(MlopsBaseOperator):
    """Validate a snapshot; ``error``-severity failures fail the task, ``warn`` ones are recorded.

    Checks, in one Great Expectations run: the schema the spec implies (target and features
    present, target without missing values, numeric features finite numbers); the spec's own
    ``expectations``; and a suite inferred from the reference data (columns, types, nullability,
    ranges, category domains). The report is stored as JSON and HTML under ``reports/``.

    :param snapshot: the ingest task's result or a snapshot URI (templated).
    :param target: target column.
    :param require_target: ``False`` accepts unlabelled or partly labelled data (monitoring
        batches): the target need not exist nor be complete; when it is absent, the spec's
        expectations about it are left out.
    :param numeric_features: numeric feature columns (None with ``categorical_features`` None:
        inferred from the data).
    :param categorical_features: categorical feature columns.
    :param expectations: list of ``{"type": "expect_...", "kwargs": {...}, "severity": "error"|"warn"}``.
    :param inferred_severities: severity per inferred kind (``columns``, ``types``, ``nullability``,
        ``ranges``, ``categories``); ``off`` disables one.
    :param reference: ``"champion"`` (the serving model's training data profile), a snapshot URI
        (templated), or ``None`` for no inferred suite.
    :param min_rows: fewer rows is an error.
    :param coerce_to_reference: read the data through the reference's frozen schema first (the
        champion's logical types), as every later read of a model version is; a value that cannot
        be coerced fails the task naming the column and the value. For monitoring batches.
    """

    template_fields: Sequence[str] = ("snapshot", "reference")
    operator_extra_links = (ReportLink(),)

    def __init__(
        self,
        *,
        snapshot: Any,
        target: str,
        numeric_features: list[str] | None = None,
        categorical_features: list[str] | None = None,
        expectations: list[dict[str, Any]] | None = None,
        inferred_severities: dict[str, str] | None = None,
        reference: str | None = "champion",
        min_rows: int = 1,
        require_target: bool = True,
        coerce_to_reference: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.snapshot = snapshot
        self.target = target
        self.require_target = require_target
        self.numeric_features = numeric_features
        self.categorical_features = categorical_features
        self.expectations = expectations
        self.inferred_severities = inferred_severities
        self.reference = reference
        self.min_rows = min_rows
        self.coerce_to_reference = coerce_to_reference

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_ops.core import validation

        frame, manifest = self.read_snapshot(self.snapshot)
        frame, checks, reference_desc = self._checks(frame, manifest)
        try:
            report = validation.run_checks(frame, checks, reference=reference_desc)
        except validation.ValidationConfigError as err:
            raise AirflowFailException(f"the validation spec is invalid: {err}") from None
        uri = self._report(context, report, manifest)
        push_metrics("validation", self.pipeline, context, report.to_dict())
        self.log.info(
            "validation %s: %d expectations, %d error(s), %d warning(s); report %s",
            report.status,
            len(report.results),
            len(report.errors),
            len(report.warnings),
            uri,
        )
        for r in report.warnings:
            self.log.warning("warn: %s", r.message)
        if report.errors:
            for r in report.errors:
                self.log.error("error: %s", r.message)
            lines = "\n".join(f"  - {r.message}" for r in report.errors[:10])
            raise AirflowFailException(
                f"validation of snapshot {manifest['sha256'][:12]} failed with {len(report.errors)} error(s):\n"
                f"{lines}\nReport: {uri}"
            )
        return {
            "status": report.status,
            "errors": 0,
            "warnings": len(report.warnings),
            "report_uri": uri,
            "snapshot_sha256": manifest["sha256"],
            "reference": reference_desc,
        }

    def _checks(self, frame: Any, manifest: dict[str, Any]) -> tuple[Any, list[Any], str | None]:
        """The checks to run: the spec's schema and expectations, and the suite inferred from the
        reference; with the frame to run them on (coerced to the reference's schema when asked)
        and what the reference is."""
        from mlops_ops.config import InferredSeverities
        from mlops_ops.core import validation
        from mlops_ops.core.features import infer_feature_kinds

        labelled = self.require_target or self.target in frame.columns
        if not labelled:
            self.log.info("no %r column: unlabelled data, the target is not checked", self.target)
        numeric, categorical = self.numeric_features, self.categorical_features
        if numeric is None and categorical is None:
            numeric, categorical = infer_feature_kinds(frame, self.target)
        try:
            severities = InferredSeverities.model_validate(self.inferred_severities or {})
        except ValueError as err:  # pydantic's ValidationError: a bad setting, not a passing fault
            raise AirflowFailException(f"inferred_severities is invalid: {err}") from None
        profile, reference_desc = self._reference_profile()
        if self.coerce_to_reference and profile is not None and profile.schema is not None:
            frame = self._coerced(frame, profile.schema, manifest)
        # monitoring batches may be partly labelled: the target is only required when asked for
        checks = validation.schema_checks(
            self.target if self.require_target else None,
            list(numeric or []),
            list(categorical or []),
            self.min_rows,
        )
        checks += validation.spec_checks(self._expectations(labelled))
        if profile is not None:
            checks += validation.infer_checks(profile, severities)
        return frame, checks, reference_desc

    def _report(self, context: Context, report: Any, manifest: dict[str, Any]) -> str:
        """The validation report (JSON and HTML) under reports/; returns its URI."""
        from mlops_ops.core.reports import validation_html

        doc = {
            **report.to_dict(),
            "snapshot_sha256": manifest["sha256"],
            "snapshot_uri": manifest["uri"],
            "pipeline": self.pipeline,
            "data_interval": self.judged_interval(context, manifest),
            **self.lineage(context),
        }
        title = f"Validation of {self.pipeline} snapshot {manifest['sha256'][:12]}"
        return self.write_report(context, doc, validation_html(doc, title))

    def _coerced(self, frame: Any, schema_doc: dict[str, Any], manifest: dict[str, Any]) -> Any:
        """The frame with the reference schema's features coerced to their logical types."""
        from mlops_ops.core.data import DataError
        from mlops_ops.core.schema import Schema, coerce_column

        schema = Schema.from_dict(schema_doc)
        types = {c.name: c.type for c in schema.columns}
        frame = frame.copy()
        where = f"snapshot {manifest['sha256'][:12]}"
        try:
            for name in schema.features:
                if name in frame.columns:
                    frame[name] = coerce_column(frame[name], types[name], column=name, where=where)
        except DataError as err:
            raise AirflowFailException(f"validation of {where} failed: {err}") from None
        return frame

    def _expectations(self, labelled: bool) -> list[dict[str, Any]]:
        """The spec's expectations; for unlabelled data, those about the target are left out."""
        expectations = list(self.expectations or [])
        if labelled:
            return expectations
        return [e for e in expectations if (e.get("kwargs") or {}).get("column") != self.target]

    def _reference_profile(self) -> tuple[Any, str | None]:
        from mlops_ops.core.drift import ReferenceProfile, build_reference_profile
        from mlops_ops.errors import parse_stored

        ref = self.reference
        if ref in (None, "", "none"):
            return None, None
        if ref == "champion":
            hook = self.mlflow_hook
            champion = hook.get_alias_version(self.pipeline)
            if champion is None:
                self.log.info("no champion yet: validating against the spec only")
                return None, None
            doc = hook.load_dict(champion.run_id, PROFILE_ARTIFACT) if champion.run_id else None
            if doc is None:
                self.log.warning(
                    "champion v%s has no %s: no inferred suite", champion.version, PROFILE_ARTIFACT
                )
                return None, None
            profile = parse_stored(
                f"{PROFILE_ARTIFACT} of champion v{champion.version} (run {champion.run_id})",
                ReferenceProfile.from_dict,
                doc,
                "retrain the champion with this version of mlops-ops",
            )
            return profile, f"champion v{champion.version} training data"
        frame, manifest = self.read_snapshot(ref)
        return build_reference_profile(frame), f"snapshot {manifest['sha256'][:12]}"
