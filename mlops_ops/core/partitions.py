"""Dated partitions: the date a file's path carries and the files of a training window."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

from mlops_ops.errors import DataError


def _date_regex(date_format: str) -> re.Pattern[str]:
    parts = {"%Y": r"(?P<Y>\d{4})", "%m": r"(?P<m>\d{2})", "%d": r"(?P<d>\d{2})"}
    pattern = re.escape(date_format)
    for code, group in parts.items():
        pattern = pattern.replace(re.escape(code), group)
    return re.compile(pattern)


def partition_date(path: str, date_format: str = "%Y-%m-%d") -> dt.date | None:
    """The date a partition's path carries (the last match wins: ``.../2026-01-31.parquet``)."""
    matches = list(_date_regex(date_format).finditer(path))
    for match in reversed(matches):
        try:
            return dt.date(int(match["Y"]), int(match["m"]), int(match["d"]))
        except ValueError:
            continue
    return None


def select_window(
    paths: Sequence[str], *, end: dt.date, days: int, date_format: str = "%Y-%m-%d"
) -> list[str]:
    """The paths whose partition date lies in ``(end - days, end]``: the last ``days`` days.

    Raises :class:`DataError` when a path carries no date (a window needs dated partitions).
    """
    start = end - dt.timedelta(days=days - 1)
    undated = [p for p in paths if partition_date(p, date_format) is None]
    if undated:
        raise DataError(
            f"a training window needs dated partitions, but {len(undated)} file(s) carry no date in the "
            f"format {date_format!r}, e.g. {undated[0]}; rename them (e.g. 2026-01-31.parquet) or remove "
            "'window' from the source"
        )
    return [p for p in paths if start <= partition_date(p, date_format) <= end]  # type: ignore[operator]
