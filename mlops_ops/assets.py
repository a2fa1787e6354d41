"""The Airflow assets of a pipeline (docs/architecture.md, "Assets").

Each asset's URI has the scheme ``x-mlops`` (Airflow leaves ``x-`` schemes as written, so building
one imports no provider's URI handler at parse time); its name keeps the URI it had until
2026-12-05, ``mlops://<pipeline>/<kind>``. A DAG of a user's that still declares
``Asset("mlops://<pipeline>/<kind>")`` then claims that name with another URI, which Airflow refuses
to activate and reports as a DAG warning in the UI, instead of never triggering without a word;
``Asset.ref(name="mlops://<pipeline>/<kind>")`` keeps working.
"""

from __future__ import annotations

from airflow.sdk import Asset


def dataset_asset(pipeline: str) -> Asset:
    """Updated by ingest; extra: sha256, rows."""
    return _asset(pipeline, "dataset")


def model_asset(pipeline: str) -> Asset:
    """Updated by deploy; extra: version."""
    return _asset(pipeline, "model")


def retrain_asset(pipeline: str) -> Asset:
    """Updated by monitoring when a retrain is requested; extra: reason, summary."""
    return _asset(pipeline, "retrain")


def predictions_asset(pipeline: str) -> Asset:
    """Updated by batch scoring; extra: version, rows, interval, uri."""
    return _asset(pipeline, "predictions")


def _asset(pipeline: str, kind: str) -> Asset:
    return Asset(name=f"mlops://{pipeline}/{kind}", uri=f"x-mlops://{pipeline}/{kind}", group="mlops")
