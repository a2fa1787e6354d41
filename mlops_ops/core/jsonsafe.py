"""Strict JSON for every document mlops-ops writes: one sanitiser, one rule for missing numbers.

The rule: **NaN, +inf and -inf become ``null``** (so do pandas' ``NA`` and ``NaT``). Strict JSON
has no token for them (``json.dumps`` would write the non-standard ``NaN``/``Infinity`` that
other readers reject), and a number that is not finite means "not computed" in every document
here. Beyond that: numpy scalars and arrays become Python numbers, booleans and lists; tuples and
sets become lists; mapping keys become strings; anything else not JSON-native (dates, paths,
enums) becomes ``str(value)``, as ``json.dumps(..., default=str)`` would write it.

This module imports neither numpy nor pandas (it recognises their values by their methods), so
hooks may use it at import time.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

_MISSING_TYPES = frozenset({"NAType", "NaTType"})  # pandas.NA, pandas.NaT


def json_safe(value: Any, *, max_items: int | None = None) -> Any:
    """``value`` as strict-JSON data (nested dicts, lists, str, int, float, bool, None).

    :param value: any document: nested mappings and sequences of scalars, numpy or pandas values.
    :param max_items: keep at most this many items of every list, tuple, set or array
        (``None``: all), e.g. to bound the sample values a validation result carries.
    :returns: a new structure; ``value`` is not changed. Non-finite floats become ``None``.
    """
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, int):
        return int(value)  # also int subclasses (IntEnum) -> plain int
    if isinstance(value, float):  # numpy.float64 is a float subclass
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v, max_items=max_items) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = list(value) if max_items is None else list(value)[:max_items]
        return [json_safe(v, max_items=max_items) for v in items]
    if type(value).__name__ in _MISSING_TYPES:
        return None
    if callable(getattr(value, "tolist", None)) and hasattr(value, "ndim"):  # numpy scalar or array
        plain = value.tolist()
        if type(plain) is type(value):  # numpy.longdouble has no Python twin
            try:
                plain = float(plain)
            except (TypeError, ValueError):
                return str(value)
        return json_safe(plain, max_items=max_items)
    return str(value)


def json_dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`json_safe` ``(value)``; raises nothing on NaN (it is ``null`` first).

    ``kwargs`` go to :func:`json.dumps` (``indent``, ``sort_keys``...); ``allow_nan`` is always False.
    """
    return json.dumps(json_safe(value), allow_nan=False, **kwargs)
