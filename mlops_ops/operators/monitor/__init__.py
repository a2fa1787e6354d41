"""Monitoring operators, one module per check: drift, performance of the serving champion, its
estimate before labels (CBPE), attribution drift, and the retrain request. Importing them loads
no pandas, sklearn, mlflow or GX."""

from __future__ import annotations

from mlops_ops.operators.monitor.attribution import DetectAttributionDriftOperator
from mlops_ops.operators.monitor.drift import DetectDriftOperator
from mlops_ops.operators.monitor.estimate import EstimatePerformanceOperator
from mlops_ops.operators.monitor.performance import CheckModelPerformanceOperator
from mlops_ops.operators.monitor.retrain import RequestRetrainOperator

__all__ = [
    "CheckModelPerformanceOperator",
    "DetectAttributionDriftOperator",
    "DetectDriftOperator",
    "EstimatePerformanceOperator",
    "RequestRetrainOperator",
]
