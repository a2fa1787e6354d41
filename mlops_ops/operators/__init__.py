"""Airflow operators of mlops-ops. Importing them loads no pandas, sklearn, mlflow or GX."""

from __future__ import annotations

from mlops_ops.operators.deploy import DeployModelOperator, ReleaseChallengerOperator
from mlops_ops.operators.evaluate import EvaluateModelOperator
from mlops_ops.operators.feedback import JoinOutcomesOperator
from mlops_ops.operators.ingest import IngestDatasetOperator
from mlops_ops.operators.monitor import (
    CheckModelPerformanceOperator,
    DetectDriftOperator,
    EstimatePerformanceOperator,
    RequestRetrainOperator,
)
from mlops_ops.operators.release import (
    ConcludeReleaseOperator,
    JudgeReleaseOperator,
    WatchChampionOperator,
)
from mlops_ops.operators.rollback import RollbackModelOperator
from mlops_ops.operators.score import BatchScoreOperator, ResolveChampionOperator
from mlops_ops.operators.train import TrainModelOperator
from mlops_ops.operators.validate import ValidateDataOperator

__all__ = [
    "BatchScoreOperator",
    "CheckModelPerformanceOperator",
    "ConcludeReleaseOperator",
    "DeployModelOperator",
    "DetectDriftOperator",
    "EstimatePerformanceOperator",
    "EvaluateModelOperator",
    "IngestDatasetOperator",
    "JoinOutcomesOperator",
    "JudgeReleaseOperator",
    "ReleaseChallengerOperator",
    "RequestRetrainOperator",
    "ResolveChampionOperator",
    "RollbackModelOperator",
    "TrainModelOperator",
    "ValidateDataOperator",
    "WatchChampionOperator",
]
