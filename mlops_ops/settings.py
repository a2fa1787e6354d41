"""Where things live: the embedded defaults and the environment variables that override them.

Read at call time, never at import time, so a worker and the DAG processor each see their own
environment.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Default registered-model alias of the version that serves.
CHAMPION_ALIAS = "champion"


def mlops_home() -> Path:
    """``MLOPS_HOME`` (default ``./.mlops``), as an absolute path."""
    return Path(os.environ.get("MLOPS_HOME", ".mlops")).expanduser().resolve()


class SettingsError(ValueError):
    """An environment setting is invalid. The message names the variable and the fix."""


def storage_root_uri() -> str:
    """``MLOPS_STORAGE``: an ObjectStoragePath URI; default ``file://<MLOPS_HOME>/storage``.

    :raises SettingsError: when the URI has a password written in it: every snapshot and report
        URI (logged, returned in XCom, linked) would carry it.
    """
    uri = os.environ.get("MLOPS_STORAGE", "").strip()
    if uri:
        from mlops_ops.hooks.credentials import mask_credentials
        from mlops_ops.url_credentials import split_credentials, without_credentials

        if split_credentials(uri)[2] is not None:
            mask_credentials(uri)
            raise SettingsError(
                f"MLOPS_STORAGE ({without_credentials(uri)}) has a password written in its URL, which "
                "would reach logs, XCom and links; remove it and put the credentials in the Airflow "
                "connection named by MLOPS_STORAGE_CONN_ID"
            )
        return uri.rstrip("/")
    return f"file://{mlops_home() / 'storage'}"


def storage_conn_id() -> str | None:
    """``MLOPS_STORAGE_CONN_ID``: Airflow connection holding the object store's credentials."""
    return os.environ.get("MLOPS_STORAGE_CONN_ID") or None


def embedded_tracking_uri() -> str:
    """MLflow on SQLite under ``MLOPS_HOME``: the embedded default."""
    return f"sqlite:///{mlops_home() / 'mlflow.db'}"


def embedded_artifact_root() -> Path:
    """Local artifact root used with the embedded SQLite tracking store."""
    return mlops_home() / "mlartifacts"


def mlflow_ui_url() -> str:
    """Base URL of the MLflow UI, used to build extra links (``MLOPS_MLFLOW_UI_URL``)."""
    return os.environ.get("MLOPS_MLFLOW_UI_URL", "http://127.0.0.1:5000").rstrip("/")
