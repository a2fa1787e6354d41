"""Names MLflow accepts: metric, param and tag keys built from feature names.

MLflow refuses a key longer than 250 characters, or with characters other than letters, digits,
``_ - . /`` and space (``mlflow.utils.validation``). Feature names come from the data and may be
anything, so every key built from one goes through :func:`mlflow_keys`, which is checked before a
model version is registered (a version whose evaluation would crash on a name must never exist).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from mlops_ops.errors import DataError

#: MLflow's longest metric, param and tag key (``mlflow.utils.validation.MAX_ENTITY_KEY_LENGTH``)
MAX_KEY_LENGTH = 250
_UNSAFE = re.compile(r"[^0-9A-Za-z_\-. /]")
_DIGEST = 8
#: the prefix of the permutation-importance metrics logged by evaluation
IMPORTANCE_PREFIX = "importance."
#: the prefix of the mean |SHAP| metrics logged by training (shorter: valid wherever importance is)
SHAP_PREFIX = "shap."


def mlflow_key(prefix: str, name: str) -> str:
    """``prefix + name`` as a valid MLflow key, distinct for distinct names.

    A name that is valid and short enough is kept as it is. Otherwise the unsafe characters become
    ``_``, the result is cut to fit, and ``-<8 hex digits of SHA-256(name)>`` is appended, so
    names that clean up alike (``a?b`` and ``a_b``, two long names with one prefix) stay apart.
    """
    safe = _UNSAFE.sub("_", name).replace("..", "__").lstrip("/ ") or "_"
    key = prefix + safe
    if safe == name and len(key) <= MAX_KEY_LENGTH:
        return key
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:_DIGEST]
    return f"{key[: MAX_KEY_LENGTH - _DIGEST - 1].rstrip()}-{digest}"


def mlflow_keys(prefix: str, names: Iterable[str]) -> dict[str, str]:
    """``{name: key}`` for every name (see :func:`mlflow_key`).

    :raises DataError: two names give one key (only possible with a hash collision).
    """
    keys: dict[str, str] = {}
    seen: dict[str, str] = {}
    for name in names:
        key = mlflow_key(prefix, str(name))
        if key in seen and seen[key] != name:
            raise DataError(
                f"feature names {seen[key]!r} and {name!r} give the same MLflow metric name {key!r}; "
                "rename one of the columns in the source"
            )
        seen[key] = str(name)
        keys[str(name)] = key
    return keys


def check_mlflow_names(features: Iterable[str]) -> dict[str, str]:
    """Check, before anything is registered, that every feature gets a valid, distinct MLflow key.

    Returns the importance metric key of each feature. :raises DataError: names collide.
    """
    keys = mlflow_keys(IMPORTANCE_PREFIX, features)
    too_long = [k for k in keys.values() if len(k) > MAX_KEY_LENGTH or _UNSAFE.search(k)]
    if too_long:  # pragma: no cover - mlflow_key guarantees this; kept as the check it documents
        raise DataError(f"MLflow keys {too_long[:3]} are invalid; rename the columns")
    return keys
