"""Credentials written inside a URL (``http://user:password@host``): split off, masked, never shown.

A URL's userinfo must not reach a log line, an XCom value or a link in the Airflow UI.
:func:`split_credentials` separates it from the URL, :func:`without_credentials` gives the form
that may be shown, and :func:`mlops_ops.hooks.credentials.mask_credentials` tells Airflow's secrets masker the password, so
any log line that still carries it (ours, MLflow's, a library's) prints ``***`` instead.
Standard library only: DAG files import this module at parse time.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = ["split_credentials", "without_credentials"]


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """``(url without userinfo, username, password)``; user and password percent-decoded.

    A URL without userinfo (or not a URL) comes back unchanged with ``(None, None)``.
    """
    if "://" not in url or "@" not in url:
        return url, None, None
    try:
        parts = urlsplit(url)
    except ValueError:  # not a parseable URL: nothing we can split
        return url, None, None
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user, has_password, password = userinfo.partition(":")
    clean = urlunsplit(parts._replace(netloc=hostinfo))
    return clean, (unquote(user) or None), (unquote(password) if has_password else None)


def without_credentials(url: str) -> str:
    """``url`` without its userinfo: safe to log, return in XCom or link to."""
    return split_credentials(url)[0]
