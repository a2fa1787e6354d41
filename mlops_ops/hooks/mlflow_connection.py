"""Where MLflow is and how to reach it: the connection half of :class:`~mlops_ops.hooks.mlflow.MlflowHook`.

Tracking URI, in order: the Airflow connection ``mlflow_default`` (conn type ``mlflow``), the
``MLFLOW_TRACKING_URI`` environment variable, the embedded ``sqlite:///<MLOPS_HOME>/mlflow.db``.
Credentials never appear in what is logged or shown. mlflow is imported inside methods.
"""

from __future__ import annotations

import logging
import os
from functools import cached_property
from typing import TYPE_CHECKING, Any

from mlops_ops import settings
from mlops_ops.errors import MlflowUnavailableError
from mlops_ops.hooks.credentials import mask_credentials
from mlops_ops.url_credentials import split_credentials, without_credentials

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["MlflowConnectionMixin", "route_mlflow_output_to_logging"]


class _LinesToLog:
    """A text stream that logs each whole line written to it, at INFO, to ``logger``.

    ``enabled`` is MLflow's switch of its event stream (``mlflow.utils.logging_utils.disable_logging``).
    """

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._partial = ""
        self.enabled = True

    def write(self, text: str) -> int:
        if not self.enabled:
            return len(text)
        self._partial += text
        while "\n" in self._partial:
            line, self._partial = self._partial.split("\n", 1)
            if line.strip():
                self._logger.info("%s", line.rstrip())
        return len(text)

    def flush(self) -> None:
        """A partial line waits for its end."""


def route_mlflow_output_to_logging() -> None:
    """Send what MLflow writes to stderr through Python logging at its own level (idempotent).

    MLflow writes its log records and its messages (``Successfully registered model ...``,
    ``Created version ...``) to stderr, which Airflow 3's task supervisor records as ERROR lines
    of a task that succeeded. Here MLflow's own handlers are removed from its loggers (``mlflow``,
    ``alembic``, ``huey``, ``sqlalchemy.engine``; their levels stay), so that their records
    propagate to the task's log handlers, and MLflow's message stream logs each line at INFO
    (logger ``mlflow``). Its artifact progress bars are turned off
    (``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false`` unless set).
    """
    from mlflow.utils import logging_utils

    # its progress bars (tqdm, on stderr) would be ERROR lines too, and mean nothing in a log
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if isinstance(logging_utils.MLFLOW_LOGGING_STREAM, _LinesToLog):
        return
    for name in ("mlflow", "alembic", "huey", "sqlalchemy.engine"):
        logger = logging.getLogger(name)
        ours = [
            h
            for h in logger.handlers
            if isinstance(getattr(h, "stream", None), logging_utils.MlflowLoggingStream)
        ]
        if ours:
            logger.handlers = [h for h in logger.handlers if h not in ours]
            logger.propagate = True
    # eprint() looks the stream up at each call
    logging_utils.MLFLOW_LOGGING_STREAM = _LinesToLog(logging.getLogger("mlflow"))  # type: ignore[assignment]


class MlflowConnectionMixin:
    """Resolves the tracking and registry URIs, the UI URL and the credentials; builds the client.

    Mixed into an Airflow hook: uses its ``get_connection`` and ``mlflow_conn_id``.
    """

    mlflow_conn_id: str

    if TYPE_CHECKING:

        @classmethod
        def get_connection(cls, conn_id: str) -> Any: ...

    # -- resolving where MLflow is --------------------------------------------------------------

    @cached_property
    def _connection(self) -> Any:
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            return self.get_connection(self.mlflow_conn_id)
        except AirflowNotFoundException:
            return None

    @cached_property
    def _configured_tracking_uri(self) -> str:
        """The tracking URI as configured, credentials in its userinfo included: never shown."""
        conn = self._connection
        if conn is not None:
            extra = conn.extra_dejson or {}
            if extra.get("tracking_uri"):
                return str(extra["tracking_uri"])
            host = (conn.host or "").strip()
            if host:
                if "://" in host:
                    return host.rstrip("/")
                scheme = conn.schema or "http"
                return f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")
        env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
        return env or settings.embedded_tracking_uri()

    @cached_property
    def _uri_credentials(self) -> tuple[str, str | None, str | None]:
        """``(tracking URI without userinfo, user, password)``; the password is masked in logs."""
        uri = self._configured_tracking_uri
        mask_credentials(uri)
        return split_credentials(uri)

    @property
    def tracking_uri(self) -> str:
        """Where MLflow is, without any credentials written in the URL: safe to log and show.

        ``http://user:pw@host`` becomes ``http://host``; the user and password are passed to
        MLflow as ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD`` (its basic auth).
        """
        return self._uri_credentials[0]

    @property
    def _client_tracking_uri(self) -> str:
        """The URI MLflow connects to: an http(s) server without userinfo (its credentials go by
        MLflow's basic-auth variables); any other store (a database URL) as configured."""
        if self.tracking_uri.startswith(("http://", "https://")):
            return self.tracking_uri
        return self._configured_tracking_uri

    @property
    def registry_uri(self) -> str | None:
        conn = self._connection
        uri = (conn.extra_dejson or {}).get("registry_uri") if conn is not None else None
        mask_credentials(uri)
        return uri

    @property
    def ui_url(self) -> str:
        """Base URL of the MLflow UI for links: never with credentials in it."""
        conn = self._connection
        extra = (conn.extra_dejson or {}) if conn is not None else {}
        if extra.get("ui_url"):
            mask_credentials(str(extra["ui_url"]))
            return without_credentials(str(extra["ui_url"])).rstrip("/")
        if self.tracking_uri.startswith(("http://", "https://")):
            return self.tracking_uri.rstrip("/")
        return without_credentials(settings.mlflow_ui_url())

    @property
    def embedded(self) -> bool:
        return self.tracking_uri.startswith("sqlite:") or self.tracking_uri.startswith("file:")

    def _configure(self) -> None:
        """Point the mlflow library at this hook's server (process-wide, as mlflow requires).

        Credentials: the connection's ``login``/``password`` (or ``token``), else those written in
        an http(s) tracking URI's userinfo, go to MLflow's ``MLFLOW_TRACKING_USERNAME``/``PASSWORD``.
        """
        import mlflow

        route_mlflow_output_to_logging()
        conn = self._connection
        _, url_user, url_password = self._uri_credentials
        from_url = self._client_tracking_uri != self._configured_tracking_uri
        login = (conn.login if conn is not None else None) or (url_user if from_url else None)
        password = (conn.password if conn is not None else None) or (url_password if from_url else None)
        if login:
            os.environ["MLFLOW_TRACKING_USERNAME"] = login
        if password:
            os.environ["MLFLOW_TRACKING_PASSWORD"] = password
        if conn is not None:
            token = (conn.extra_dejson or {}).get("token")
            if token:
                os.environ["MLFLOW_TRACKING_TOKEN"] = token
        # fail in seconds, not minutes, when the server is down; users can raise these
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
        if self.embedded:
            settings.mlops_home().mkdir(parents=True, exist_ok=True)
        # mlflow.set_*_uri() also export the URI to the environment; put the environment back as
        # the user set it, or the next hook in this process would mistake ours for theirs.
        saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
        mlflow.set_tracking_uri(self._client_tracking_uri)
        if self.registry_uri:
            mlflow.set_registry_uri(self.registry_uri)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def get_conn(self) -> MlflowClient:
        """A client for this server, after checking that it answers."""
        from mlflow import MlflowClient

        self._configure()
        client = MlflowClient(tracking_uri=self._client_tracking_uri, registry_uri=self.registry_uri)
        try:
            client.search_experiments(max_results=1)
        except Exception as err:
            raise MlflowUnavailableError(
                f"MLflow tracking server at {self.tracking_uri} did not answer ({type(err).__name__}: "
                f"{str(err)[:300]}). Check the Airflow connection {self.mlflow_conn_id!r} or "
                "MLFLOW_TRACKING_URI, and that the server is running"
            ) from err
        return client

    @cached_property
    def client(self) -> MlflowClient:
        return self.get_conn()

    def test_connection(self) -> tuple[bool, str]:
        try:
            self.get_conn()
        except MlflowUnavailableError as err:
            return False, str(err)
        return True, f"MLflow at {self.tracking_uri} answers"
