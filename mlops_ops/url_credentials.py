"""Credentials written inside a URL (``http://user:password@host``): split off, masked, never shown.

A URL's userinfo must not reach a log line, an XCom value or a link in the Airflow UI.
:func:`split_credentials` separates it from the URL, :func:`without_credentials` gives the form
that may be shown, and :func:`mlops_ops.hooks.credentials.mask_credentials` tells Airflow's secrets masker the password, so
any log line that still carries it (ours, MLflow's, a library's) prints ``***`` instead.
Standard library only: DAG files import this module at parse time.

A password is often pasted without percent-encoding its ``/``, ``?`` or ``#``
(``http://user:pa/ss@host``). RFC 3986 then ends the authority at that character, so a strict
parser finds no userinfo at all and the password would be shown in full. Such a URL is read as
userinfo too, when what precedes its ``@`` is ``<user>:<password>`` and the password is not a port
followed by a path (``http://host:8080/a@b`` has no credentials).
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = ["raw_password", "split_credentials", "without_credentials"]

#: ``scheme://user:password@rest`` whose password holds an unencoded ``/``, ``?`` or ``#``
_LOOSE_USERINFO = re.compile(
    r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://(?P<user>[^/?#@:\[\]]*):(?P<password>[^@]*)@(?P<rest>.*)$",
    re.DOTALL,
)
_PORT_THEN_PATH = re.compile(r"^\d{1,5}[/?#]")
_ENDS_AUTHORITY = re.compile(r"[/?#]")


def _split_raw(url: str) -> tuple[str, str | None, str | None]:
    """``(url without userinfo, user, password)`` as written (not percent-decoded)."""
    if "://" not in url or "@" not in url:
        return url, None, None
    try:
        parts = urlsplit(url)
    except ValueError:  # not parseable (e.g. "http://u:pw@[::1"): still never show its password
        parts = None
    if parts is not None and "@" in parts.netloc:
        userinfo, _, hostinfo = parts.netloc.rpartition("@")
        user, has_password, password = userinfo.partition(":")
        return urlunsplit(parts._replace(netloc=hostinfo)), user, (password if has_password else None)
    loose = _LOOSE_USERINFO.match(url.strip())
    if loose and (parts is None or _ENDS_AUTHORITY.search(loose["password"])):
        if not _PORT_THEN_PATH.match(loose["password"]):
            return f"{loose['scheme']}://{loose['rest']}", loose["user"], loose["password"]
    return url, None, None


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """``(url without userinfo, username, password)``; user and password percent-decoded.

    A URL without userinfo (or not a URL) comes back unchanged with ``(None, None)``.
    """
    clean, user, password = _split_raw(url)
    if user is None and password is None:
        return clean, None, None
    return clean, (unquote(user or "") or None), (unquote(password) if password is not None else None)


def raw_password(url: str) -> str | None:
    """The password of ``url`` as written in it (percent-encoding kept); None without one."""
    return _split_raw(url)[2]


def without_credentials(url: str) -> str:
    """``url`` without its userinfo: safe to log, return in XCom or link to."""
    return split_credentials(url)[0]
