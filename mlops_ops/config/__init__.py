"""Pipeline specs: one YAML file per pipeline, validated when it is loaded.

A bad spec fails at DAG parse time with a message that names the file, the field and what was
expected, so it is noticed when it is committed rather than when a worker first runs it.
This package imports only pydantic and PyYAML: DAG files import it at parse time.

The spec models live by section (:mod:`~mlops_ops.config.base`, :mod:`~mlops_ops.config.data`, :mod:`~mlops_ops.config.deployment`,
:mod:`~mlops_ops.config.model`, :mod:`~mlops_ops.config.monitoring`,
:mod:`~mlops_ops.config.pipeline`), apart from loading (:mod:`~mlops_ops.config.loading`) and
the errors (:mod:`~mlops_ops.config.errors`); every name is exported here.
"""

from mlops_ops.config.base import (
    CLASSIFICATION_METRICS,
    DEFAULT_START_DATE,
    MAX_SEED,
    METRIC_DIRECTIONS,
    REGRESSION_METRICS,
    InferredSeverity,
    Seed,
    Severity,
)
from mlops_ops.config.base import (
    _Model as _Model,  # the base of every section model, for tests that walk them
)
from mlops_ops.config.data import (
    CsvSpec,
    FeaturesSpec,
    LogicalType,
    SourceSpec,
    WindowSpec,
)
from mlops_ops.config.deployment import (
    BakeSpec,
    DeploymentSpec,
    GuardrailsSpec,
    WatchSpec,
)
from mlops_ops.config.errors import (
    FieldError,
    SpecError,
)
from mlops_ops.config.loading import (
    DuplicateKeyError,
    load_pipeline_spec,
    parse_pipeline_spec,
    pipeline_json_schema,
    read_spec_document,
    spec_files,
)
from mlops_ops.config.model import (
    BootstrapSpec,
    ChangeThreshold,
    EvaluationSpec,
    ModelSpec,
    SliceSpec,
    ValueThreshold,
)
from mlops_ops.config.monitoring import (
    AttributionSpec,
    DriftRule,
    DriftSpec,
    EntitySpec,
    ExpectationSpec,
    FeedbackSpec,
    InferredSeverities,
    MonitoringSpec,
    PerformanceSpec,
    ReferenceSpec,
    RetrainSpec,
    ValidationSpec,
)
from mlops_ops.config.notifications import NotificationsSpec
from mlops_ops.config.pipeline import (
    Name,
    PipelineSpec,
    SchedulesSpec,
    ScoringSpec,
    training_fingerprint,
)

__all__ = [
    "AttributionSpec",
    "BakeSpec",
    "BootstrapSpec",
    "CLASSIFICATION_METRICS",
    "ChangeThreshold",
    "CsvSpec",
    "DEFAULT_START_DATE",
    "DeploymentSpec",
    "DriftRule",
    "DriftSpec",
    "DuplicateKeyError",
    "EvaluationSpec",
    "ExpectationSpec",
    "FeaturesSpec",
    "FieldError",
    "GuardrailsSpec",
    "EntitySpec",
    "FeedbackSpec",
    "InferredSeverities",
    "InferredSeverity",
    "LogicalType",
    "MAX_SEED",
    "METRIC_DIRECTIONS",
    "ModelSpec",
    "MonitoringSpec",
    "NotificationsSpec",
    "Name",
    "PerformanceSpec",
    "PipelineSpec",
    "REGRESSION_METRICS",
    "ReferenceSpec",
    "RetrainSpec",
    "SchedulesSpec",
    "ScoringSpec",
    "Seed",
    "Severity",
    "SliceSpec",
    "SourceSpec",
    "SpecError",
    "ValidationSpec",
    "ValueThreshold",
    "WatchSpec",
    "WindowSpec",
    "load_pipeline_spec",
    "parse_pipeline_spec",
    "pipeline_json_schema",
    "read_spec_document",
    "spec_files",
    "training_fingerprint",
]
