"""Hooks: the only code that talks to the outside (MLflow, object storage)."""

from __future__ import annotations

from mlops_ops.hooks.mlflow import MlflowHook

__all__ = ["MlflowHook"]
