"""Where a registered model version lives: its MLflow ``models:/<name>/<version>`` URI.

Every place that loads or reports a registered model builds the URI here, so the form stays one
(a concrete version, never an alias: an alias can move between reading and loading).
"""

from __future__ import annotations

import re

_VERSION = re.compile(r"^[vV]?([1-9][0-9]*)$")


def model_version_uri(name: str, version: int | str) -> str:
    """``models:/<name>/<version>`` for a registered model version.

    :param name: the registered model's name (a pipeline's name), not empty.
    :param version: the version number, ``3``, ``"3"`` or ``"v3"``.
    :returns: e.g. ``"models:/churn/3"``.
    :raises ValueError: ``name`` is empty or contains ``/``, or ``version`` is not a positive integer.
    """
    if not name or "/" in name:
        raise ValueError(f"a registered model name must be non-empty without '/', got {name!r}")
    match = _VERSION.match(str(version).strip())
    if isinstance(version, bool) or match is None:
        raise ValueError(
            f"model version of {name!r} must be a positive integer such as 3 or 'v3', got {version!r}"
        )
    return f"models:/{name}/{match.group(1)}"
