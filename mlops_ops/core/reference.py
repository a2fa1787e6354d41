"""Which data a monitoring batch is compared with: the reference of the drift test.

Three kinds (``monitoring.drift.reference.kind``):

- ``training`` (default): the champion's training data, through the reference profile logged with
  it. Right when the world is meant to look like the training data every day.
- ``seasonal``: the same period one season earlier (``lag_days``, e.g. 365), pooled over
  ``seasons`` past seasons. A window of ``days`` days (default: as long as the batch) centred on
  the batch's period shifted back by ``lag_days``. Right for data with a yearly (or weekly) cycle:
  July is compared with last July, not with the whole year the model was trained on.
- ``rolling``: the ``days`` days just before the batch. Right when slow change is expected and only
  a sudden change should alarm.

Seasonal and rolling references are read from dated partitions (a date in each file's path). This
module is pure logic: the dates and intervals; the monitoring operator reads the files.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlops_ops.core.partitions import partition_date
from mlops_ops.errors import DataError

KINDS = ("training", "seasonal", "rolling")


@dataclass(frozen=True)
class Interval:
    """Days ``start`` to ``end``, both included."""

    start: dt.date
    end: dt.date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def shifted(self, days: int) -> Interval:
        delta = dt.timedelta(days=days)
        return Interval(self.start + delta, self.end + delta)

    def overlaps(self, other: Interval) -> bool:
        return self.start <= other.end and other.start <= self.end

    def __contains__(self, day: object) -> bool:
        return isinstance(day, dt.date) and self.start <= day <= self.end

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "days": self.days}

    def __str__(self) -> str:
        if self.start == self.end:
            return self.start.isoformat()
        return f"{self.start.isoformat()}..{self.end.isoformat()}"


@dataclass
class ReferenceChoice:
    """The reference a drift report used, its data interval(s) and why; JSON under ``reference``.

    ``requested`` is the kind the spec asked for; ``kind`` the one used (``training`` after a
    fallback, which ``fallback`` says and ``why`` explains). ``intervals`` are the reference's data
    intervals (for ``training``, the training snapshot's when known), ``batch`` the batch's and
    ``batch_dates_from`` how it was found. ``files`` are the partitions read (first 100).
    """

    kind: str
    requested: str
    why: str
    rows: int | None = None
    intervals: list[Interval] = field(default_factory=list)
    batch: Interval | None = None
    batch_dates_from: str | None = None
    files: list[str] = field(default_factory=list)
    n_files: int = 0
    source: str | None = None
    fallback: bool = False
    settings: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """One line: what the batch was compared with."""
        when = ", ".join(str(i) for i in self.intervals)
        label = {
            "training": "the champion's training data",
            "seasonal": "the same period of past season(s)",
            "rolling": "the days just before the batch",
        }[self.kind]
        parts = [when] if when else []
        if self.rows is not None:
            parts.append(f"{self.rows:,} rows")
        return f"{label} ({'; '.join(parts)})" if parts else label

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "requested": self.requested,
            "fallback": self.fallback,
            "why": self.why,
            "description": self.describe(),
            "rows": self.rows,
            "intervals": [i.to_dict() for i in self.intervals],
            "batch_interval": self.batch.to_dict() if self.batch else None,
            "batch_dates_from": self.batch_dates_from,
            "source": self.source,
            "files": list(self.files[:100]),
            "n_files": self.n_files,
            "settings": dict(self.settings),
        }


def data_interval(
    source: Mapping[str, Any] | None, *, date_format: str = "%Y-%m-%d", default_day: dt.date | None = None
) -> tuple[Interval | None, str]:
    """The days a snapshot's data covers, from its manifest's ``source``, and how that was found.

    In order: the ingest window (``window.days`` up to ``window.end``); the dates in the names of
    all its files (``date_format``); else ``default_day`` (a run's logical date), else unknown.
    """
    source = source or {}
    window = source.get("window")
    if isinstance(window, Mapping) and window.get("end") and window.get("days"):
        end = dt.date.fromisoformat(str(window["end"])[:10])
        days = int(window["days"])
        return Interval(
            end - dt.timedelta(days=days - 1), end
        ), f"its ingest window ({days} day(s) up to {end})"
    files = [str(f) for f in source.get("files") or []]
    if files and len(files) == int(source.get("n_files", len(files))):
        dates = [partition_date(f, date_format) for f in files]
        if all(d is not None for d in dates):
            known = [d for d in dates if d is not None]
            return Interval(min(known), max(known)), f"the dates in its file names ({date_format})"
    if default_day is not None:
        return Interval(default_day, default_day), "the run's logical date (its files carry no date)"
    return None, "unknown (no window and no dated file names)"


def reference_intervals(
    kind: str, batch: Interval, *, lag_days: int = 365, seasons: int = 1, days: int | None = None
) -> list[Interval]:
    """The reference's data intervals for a batch covering ``batch``, most recent first.

    ``seasonal``: for each past season ``s`` (1..``seasons``), ``days`` days (default: the batch's
    length) centred on the batch shifted back by ``s * lag_days``. ``rolling``: the ``days`` days
    before the batch's first day.

    :raises ValueError: unknown kind, a rolling reference without ``days``, or a seasonal window
        that would overlap the batch itself (``days`` too long for ``lag_days``).
    """
    if kind == "rolling":
        if not days:
            raise ValueError("a rolling reference needs days: how many days before the batch")
        return [Interval(batch.start - dt.timedelta(days=days), batch.start - dt.timedelta(days=1))]
    if kind != "seasonal":
        raise ValueError(f"reference kind must be 'seasonal' or 'rolling' to have intervals, got {kind!r}")
    length = days or batch.days
    offset = (batch.days - length) // 2  # centred on the batch's period
    out = []
    for season in range(1, seasons + 1):
        start = batch.start - dt.timedelta(days=season * lag_days - offset)
        out.append(Interval(start, start + dt.timedelta(days=length - 1)))
    clash = [i for i in out if i.overlaps(batch)]
    if clash:
        raise ValueError(
            f"the seasonal reference {clash[0]} overlaps the batch {batch}: with lag_days {lag_days} "
            f"a window of {length} day(s) reaches into the batch; use fewer days or a longer lag_days"
        )
    return out


def select_partitions(paths: Sequence[str], intervals: Sequence[Interval], date_format: str) -> list[str]:
    """The paths whose partition date falls in one of ``intervals``.

    :raises DataError: a path carries no date in ``date_format`` (a reference window needs dated
        partitions), naming it.
    """
    undated = [p for p in paths if partition_date(p, date_format) is None]
    if undated:
        raise DataError(
            f"a seasonal or rolling drift reference needs dated partitions, but {len(undated)} file(s) "
            f"carry no date in the format {date_format!r}, e.g. {undated[0]}; set "
            "monitoring.drift.reference.uri to the dated files (or date_format to their layout)"
        )
    return [p for p in paths if any(partition_date(p, date_format) in i for i in intervals)]


# -- why this reference: the sentences the drift report and the task log give ---------------------


def training_reason(champion_version: Any) -> str:
    """Why the reference is the champion's training data when ``reference.kind`` is ``training``."""
    return (
        f"reference.kind is 'training' (the default): the batch is compared with the data "
        f"champion v{champion_version} was trained on"
    )


def window_reason(
    kind: str,
    batch: Interval,
    found: str,
    intervals: Sequence[Interval],
    *,
    lag_days: int,
    seasons: int,
    days: int | None,
) -> str:
    """Why a ``seasonal`` or ``rolling`` window is the reference (``found``: where the batch's dates
    were read from)."""
    if kind == "seasonal":
        back = f"{lag_days} days earlier" + (f", in each of {seasons} past seasons" if seasons > 1 else "")
        return (
            f"reference.kind is 'seasonal': the batch ({batch}, from {found}) is compared with "
            f"{intervals[0].days} day(s) around the same period {back}, so a recurring cycle is not "
            "taken for drift"
        )
    return (
        f"reference.kind is 'rolling': the batch ({batch}, from {found}) is compared with the "
        f"{days} day(s) before it, so slow change is absorbed and a sudden one alarms"
    )


def unusable_reason(choice: ReferenceChoice, *, rows: int | None, min_rows: int) -> str | None:
    """Why a windowed reference cannot be used, or None: no partition dated in the window, or
    (``rows``: the rows read from its partitions, None before reading) fewer than ``min_rows``."""
    if not choice.files:
        return "no partition is dated in it"
    if rows is not None and rows < min_rows:
        return f"it holds {rows:,} rows, fewer than min_rows {min_rows:,}"
    return None


def fallback_reason(choice: ReferenceChoice, champion_version: Any, why: str) -> str:
    """The sentence recording that the champion's training data stands in for ``choice``."""
    where = ", ".join(str(i) for i in choice.intervals)
    return (
        f"the {choice.kind} reference ({choice.source}, {where}) cannot be used: {why}; the batch "
        f"is compared with the data champion v{champion_version} was trained on instead"
    )
