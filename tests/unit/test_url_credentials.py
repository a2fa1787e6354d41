"""Credentials inside URLs: split off, never shown, masked in logs; MlflowHook and MLOPS_STORAGE."""

from __future__ import annotations

import json

import pytest

from mlops_ops.hooks.credentials import mask_credentials
from mlops_ops.url_credentials import split_credentials, without_credentials


@pytest.mark.parametrize(
    ("url", "clean", "user", "password"),
    [
        ("http://user:pw@host:5000", "http://host:5000", "user", "pw"),
        (
            "https://u%40corp:p%3Aw%2Fd@mlflow.example.com/base",
            "https://mlflow.example.com/base",
            "u@corp",
            "p:w/d",
        ),
        ("http://token@host", "http://host", "token", None),
        ("http://user:@host", "http://host", "user", ""),
        ("postgresql://mlflow:pw@db:5432/mlflow", "postgresql://db:5432/mlflow", "mlflow", "pw"),
        ("s3://KEY:SECRET@bucket/prefix", "s3://bucket/prefix", "KEY", "SECRET"),
        ("http://host:5000/path?q=a@b", "http://host:5000/path?q=a@b", None, None),  # @ not in netloc
        ("http://host:5000", "http://host:5000", None, None),
        ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db", None, None),
        ("/local/path@2026", "/local/path@2026", None, None),
        # a password pasted without percent-encoding its "/", "?" or "#": still userinfo
        ("http://user:pa/ss@host:5000", "http://host:5000", "user", "pa/ss"),
        ("http://user:pa#ss@host", "http://host", "user", "pa#ss"),
        ("https://user:pa?ss@host/base", "https://host/base", "user", "pa?ss"),
        ("s3://KEY:se/cr+et@bucket/prefix", "s3://bucket/prefix", "KEY", "se/cr+et"),
        ("http://user:pw@[::1", "http://[::1", "user", "pw"),  # not parseable: still split
        ("http://u:pw@host@other", "http://other", "u", "pw@host"),
        # a port and a path with "@" in it: no credentials
        ("http://host:8080/path/a@b", "http://host:8080/path/a@b", None, None),
        ("http://[::1]:8080/a@b", "http://[::1]:8080/a@b", None, None),
        ("file:///data/a:b@c.csv", "file:///data/a:b@c.csv", None, None),
        ("s3://bucket/x:y@z.csv", "s3://bucket/x:y@z.csv", None, None),
    ],
)
def test_split_credentials(url, clean, user, password):
    assert split_credentials(url) == (clean, user, password)
    assert without_credentials(url) == clean


def _redacted(text: str) -> str:
    from airflow.sdk.log import _secrets_masker

    return str(_secrets_masker().redact(text))


def test_the_password_is_masked_as_written_and_decoded():
    mask_credentials("http://user:S3cr%21tPw@host:5000")
    assert _redacted("connecting with S3cr!tPw") == "connecting with ***"
    assert _redacted("url http://user:S3cr%21tPw@host") == "url http://user:***@host"


@pytest.mark.parametrize(
    ("url", "password"),
    [
        ("http://user:pw@host:5000", "pw"),  # shorter than the masker's minimum
        ("http://u:pw@host", "pw"),  # even "u:pw" is
        ("http://admin:airflow@host", "airflow"),  # a word the masker never masks
        ("http://airflow:Airflow@host", "Airflow"),
        ("http://user:pa%2F@host", "pa/"),
        ("http://user:p/w@host", "p/w"),  # not percent-encoded
        ("postgresql://mlflow:1234@db:5432/mlflow", "1234"),
    ],
)
def test_a_url_is_never_logged_with_a_short_or_common_password(url, password):
    """Airflow's masker skips secrets under 5 characters and "airflow": the userinfo is masked."""
    mask_credentials(url)
    redacted = _redacted(f"connecting to {url} now")
    assert f"{password}@" not in redacted
    assert redacted.startswith("connecting to ")
    assert redacted.endswith(" now")


def test_a_password_with_an_unencoded_slash_is_masked_whole():
    mask_credentials("http://user:Secr/et!99@host:5000")
    assert _redacted("url http://user:Secr/et!99@host:5000") == "url http://user:***@host:5000"


@pytest.fixture
def clean_mlflow_env(monkeypatch):
    for var in (
        "MLFLOW_TRACKING_URI",
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
        "AIRFLOW_CONN_MLFLOW_DEFAULT",
        "MLOPS_MLFLOW_UI_URL",
    ):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    "configure",
    [
        lambda mp, url: mp.setenv("MLFLOW_TRACKING_URI", url),
        lambda mp, url: mp.setenv(
            "AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps({"conn_type": "mlflow", "host": url})
        ),
        lambda mp, url: mp.setenv(
            "AIRFLOW_CONN_MLFLOW_DEFAULT",
            json.dumps({"conn_type": "mlflow", "host": "ignored", "extra": {"tracking_uri": url}}),
        ),
    ],
    ids=["env", "connection host", "connection extra"],
)
def test_the_hook_shows_no_credentials_and_passes_them_as_basic_auth(clean_mlflow_env, configure):
    import os

    from mlops_ops.hooks.mlflow import MlflowHook

    configure(clean_mlflow_env, "http://alice:Pa55%23word@mlflow.internal:5000")
    hook = MlflowHook()
    assert hook.tracking_uri == "http://mlflow.internal:5000"
    assert hook._client_tracking_uri == "http://mlflow.internal:5000"
    assert hook.ui_url == "http://mlflow.internal:5000"
    assert hook.run_url("1", "abc") == "http://mlflow.internal:5000/#/experiments/1/runs/abc"
    assert hook.model_version_url("churn", "3") == "http://mlflow.internal:5000/#/models/churn/versions/3"
    hook._configure()
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "alice"
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "Pa55#word"
    assert _redacted("Pa55#word and Pa55%23word") == "*** and ***"


def test_the_connection_login_wins_over_the_url_userinfo(clean_mlflow_env):
    import os

    from mlops_ops.hooks.mlflow import MlflowHook

    clean_mlflow_env.setenv(
        "AIRFLOW_CONN_MLFLOW_DEFAULT",
        json.dumps(
            {"conn_type": "mlflow", "host": "http://a:b@mlflow:5000", "login": "bob", "password": "pw2"}
        ),
    )
    hook = MlflowHook()
    hook._configure()
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "bob"
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "pw2"
    assert hook.tracking_uri == "http://mlflow:5000"


def test_a_database_tracking_uri_keeps_its_credentials_for_mlflow_only(clean_mlflow_env):
    from mlops_ops.hooks.mlflow import MlflowHook

    clean_mlflow_env.setenv("MLFLOW_TRACKING_URI", "postgresql://mlflow:DbPa55@db:5432/mlflow")
    hook = MlflowHook()
    assert hook.tracking_uri == "postgresql://db:5432/mlflow"  # what messages show
    assert hook._client_tracking_uri == "postgresql://mlflow:DbPa55@db:5432/mlflow"  # what MLflow gets
    assert "DbPa55" not in hook.ui_url
    assert _redacted("DbPa55") == "***"


def test_a_ui_url_with_credentials_is_linked_without_them(clean_mlflow_env):
    from mlops_ops.hooks.mlflow import MlflowHook

    clean_mlflow_env.setenv(
        "AIRFLOW_CONN_MLFLOW_DEFAULT",
        json.dumps(
            {
                "conn_type": "mlflow",
                "host": "http://mlflow:5000",
                "extra": {"ui_url": "https://u:UiPw@ui.example/"},
            }
        ),
    )
    hook = MlflowHook()
    assert hook.ui_url == "https://ui.example"
    assert "UiPw" not in hook.run_url("1", "r")


def test_an_unreachable_server_message_names_no_password(clean_mlflow_env):
    from mlops_ops.hooks.mlflow import MlflowHook, MlflowUnavailableError

    clean_mlflow_env.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    clean_mlflow_env.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    clean_mlflow_env.setenv("MLFLOW_TRACKING_URI", "http://u:NoShowPw@127.0.0.1:9/")
    with pytest.raises(MlflowUnavailableError) as err:
        MlflowHook().get_conn()
    assert "NoShowPw" not in str(err.value)
    assert "http://127.0.0.1:9" in str(err.value)


@pytest.mark.parametrize("uri", ["s3://KEY:SECRET@bucket/mlops", "https://u:SECRET@files.example/mlops"])
def test_a_storage_uri_with_a_password_is_refused_naming_the_variable(monkeypatch, uri):
    from mlops_ops.settings import SettingsError, storage_root_uri

    monkeypatch.setenv("MLOPS_STORAGE", uri)
    with pytest.raises(SettingsError) as err:
        storage_root_uri()
    message = str(err.value)
    assert message.startswith("MLOPS_STORAGE (")
    assert "SECRET" not in message
    assert "MLOPS_STORAGE_CONN_ID" in message
    assert issubclass(SettingsError, ValueError)
