"""Airflow's secrets masker told about credentials written inside URLs.

Apart from :mod:`mlops_ops.url_credentials` (pure string handling, which the spec models use), so
that nothing ``mlops_ops.core`` reaches imports Airflow.
"""

from __future__ import annotations

from mlops_ops.url_credentials import raw_password, split_credentials, without_credentials

__all__ = ["mask_credentials"]


def mask_credentials(url: str | None) -> None:
    """Tell Airflow's secrets masker the password in ``url`` (as written and percent-decoded).

    Airflow's masker ignores secrets shorter than ``[logging] min_length_masked_secret`` (5 by
    default) and the word ``airflow``. For such a password the whole userinfo as written
    (``user:pw``, or ``://u:pw@`` when even that is too short) is masked instead, so the URL is
    still never logged with it: ``http://***@host``.
    The bare short password can then still appear in a line that prints it alone.

    Outside a task (no Airflow logging set up) this still registers the mask in this process.
    """
    if not url:
        return
    _, _, password = split_credentials(url)
    if not password:
        return
    from airflow.sdk.log import mask_secret

    mask_secret(password)
    raw = raw_password(url)
    if raw and raw != password:
        mask_secret(raw)
    if raw and _masker_skips(password):
        userinfo = _raw_userinfo(url)
        if userinfo:
            # still too short for the masker ("u:pw"): with its delimiters ("://u:pw@")
            mask_secret(userinfo if not _masker_skips(userinfo) else f"://{userinfo}@")


def _masker_skips(secret: str) -> bool:
    """True when Airflow's secrets masker would not mask ``secret`` (too short or a skipped word)."""
    from airflow.sdk.log import _secrets_masker

    try:
        from airflow.sdk._shared.secrets_masker.secrets_masker import SECRETS_TO_SKIP_MASKING
    except ImportError:  # pragma: no cover - the constant moved: assume Airflow 3.3's list
        SECRETS_TO_SKIP_MASKING = {"airflow"}  # noqa: N806
    min_length = int(getattr(_secrets_masker(), "min_length_to_mask", 5) or 0)
    return len(secret) < min_length or secret.lower() in SECRETS_TO_SKIP_MASKING


def _raw_userinfo(url: str) -> str | None:
    """``user:password`` exactly as written in ``url`` (between ``://`` and the host)."""
    clean = without_credentials(url)
    if clean == url:
        return None
    body, rest = url.strip().partition("://")[2], clean.partition("://")[2]
    if not rest or not body.endswith(rest):
        # the host part was normalised (e.g. the scheme's case): fall back to the first "@"
        return body.rpartition("@")[0] if "@" in body else None
    userinfo = body[: len(body) - len(rest)]
    return userinfo.removesuffix("@") or None
