"""The Airflow assets of a pipeline (docs/architecture.md, "Assets")."""

from __future__ import annotations

from airflow.sdk import Asset


def dataset_asset(pipeline: str) -> Asset:
    """Updated by ingest; extra: sha256, rows."""
    return Asset(f"x-mlops://{pipeline}/dataset", group="mlops")


def model_asset(pipeline: str) -> Asset:
    """Updated by deploy; extra: version."""
    return Asset(f"x-mlops://{pipeline}/model", group="mlops")


def retrain_asset(pipeline: str) -> Asset:
    """Updated by monitoring when a retrain is requested; extra: reason, summary."""
    return Asset(f"x-mlops://{pipeline}/retrain", group="mlops")


def predictions_asset(pipeline: str) -> Asset:
    """Updated by batch scoring; extra: version, rows, interval, uri."""
    return Asset(f"x-mlops://{pipeline}/predictions", group="mlops")
