"""Airflow's secrets masker told about credentials written inside URLs.

Apart from :mod:`mlops_ops.url_credentials` (pure string handling, which the spec models use), so
that nothing ``mlops_ops.core`` reaches imports Airflow.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from mlops_ops.url_credentials import split_credentials

__all__ = ["mask_credentials"]


def mask_credentials(url: str | None) -> None:
    """Tell Airflow's secrets masker the password in ``url`` (as written and percent-decoded).

    Outside a task (no Airflow logging set up) this still registers the mask in this process.
    """
    if not url:
        return
    _, _, password = split_credentials(url)
    if not password:
        return
    from airflow.sdk.log import mask_secret

    mask_secret(password)
    raw = urlsplit(url).netloc.rpartition("@")[0].partition(":")[2]
    if raw and raw != password:
        mask_secret(raw)
