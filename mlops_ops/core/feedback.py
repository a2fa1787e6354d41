"""The feedback join: outcome rows matched to the predictions they answer (``monitoring.feedback``).

Pure logic over pandas: :func:`join_outcomes` takes one batch of outcome rows (one monitoring run's
arrivals), the candidate predictions (:func:`predictions_from_log` for the online service's
prediction log, :func:`predictions_from_batch` for a batch-scoring output) and the ids of
predictions joined by earlier runs, and returns the joined outcomes
(:data:`~mlops_ops.core.outcomes.JOINED_OUTCOME_SCHEMA`) with exact counts.

**Buckets.** Every received row lands in exactly one of ``invalid``, ``orphan``,
``out_of_window``, ``duplicate`` and ``joined`` (tested in that order), so
``received == invalid + orphan + out_of_window + duplicate + joined``:

``invalid``
    the label (or a blank one), the key (``prediction_id`` or the entity key) or the event time is
    missing, or the time cannot be read as a date-time, or the label is not one of a binary
    model's two classes (its predictions carry a probability), or (joined by prediction id) the
    outcome's event time is before its prediction.
``orphan``
    no prediction matches: no prediction with that id, or no prediction for that entity made at
    or before the event time, within ``lookback_days`` before the event time (predictions older
    than that are not searched).
``out_of_window``
    a prediction matches, but the delay from the prediction to the outcome's event time is more
    than ``window_days``.
``duplicate``
    the matched prediction already has an outcome: joined by an earlier run (the earlier run
    wins: its stored part is never rewritten by a later run, so what an earlier report measured
    stays reproducible), or matched by another row of this batch (the row with the earliest event
    time wins, ties by row order: the outcome known first, the same rule as across runs). A
    prediction is never joined twice.
``joined``
    matched and stored: one joined row per model row of the prediction (a shadow release's
    champion and shadow rows share one id, so one outcome gives two joined rows; ``joined_rows``
    counts them).

``conflicting`` counts the duplicates whose label differs from the one kept (a subset of
``duplicate``; their reason names both labels): the first outcome still wins, but a source that
delivers contradicting outcomes is visible.

``late`` counts the joined outcomes whose event time is before the run's interval start: they
arrived in a later run than the one whose interval holds their event time (a subset of
``joined``; zero without an event-time column).

**Matching.** By prediction id: the prediction log's ``prediction_id`` or, for batch scoring,
``batch:<interval key>:<row number>`` (row number from 0 in the output file's order). By entity:
the prediction for that key (a column of the request / scoring input of the same name) made last
at or before the outcome's event time (a batch output's time is its data interval's start);
ties by prediction id.

**Labels** become text in the same form as ``prediction`` (the model's classes as the service
writes them: ``"1"``, ``"True"``, ``"yes"``; regression values as Python float text ``"12.5"``),
so ``1``, ``1.0``, ``"1"`` and ``True`` all match the class ``"1"``, and a text label differing
from one class only in case (``Yes``) is that class (``yes``); a label that has no such form
raises :class:`FeedbackError` naming the source, the column and the fix.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa

from mlops_ops.core.outcomes import JOINED_COLUMNS, JOINED_OUTCOME_SCHEMA
from mlops_ops.errors import DataError

#: The columns of a candidate prediction frame (one row per model row of a prediction).
PREDICTION_COLUMNS = (
    "prediction_id",
    "source",
    "model_version",
    "arm",
    "entity_key",
    "predicted_at",
    "prediction",
    "probability",
)
#: The buckets every received row lands in, in the order they are tested.
BUCKETS = ("invalid", "orphan", "out_of_window", "duplicate", "joined")
_INT_TEXT = re.compile(r"^-?\d+$")
_UUID_HEX = re.compile(r"^[0-9a-f]{32}$")


class FeedbackError(DataError):
    """Outcome rows or predictions that cannot be joined as given; the message names the source,
    the column and the fix."""


@dataclass(frozen=True)
class FeedbackKeys:
    """How outcome rows are read and matched (``monitoring.feedback``).

    :param label: the outcome column.
    :param prediction_id: the column with the prediction id (or None: by entity).
    :param entity_key: the entity column (or None: by prediction id).
    :param time: the event-time column (required with ``entity_key``).
    :param window_days: largest delay from prediction to outcome that joins, in days.
    :param lookback_days: how far before the event time predictions are searched, in days.
    """

    label: str
    prediction_id: str | None = None
    entity_key: str | None = None
    time: str | None = None
    window_days: float = 14.0
    lookback_days: float = 28.0

    def __post_init__(self) -> None:
        if (self.prediction_id is None) == (self.entity_key is None):
            raise ValueError("give exactly one of prediction_id or entity_key")
        if self.entity_key is not None and self.time is None:
            raise ValueError("joining by entity needs the event-time column 'time'")
        if not 0 < self.window_days <= self.lookback_days:
            raise ValueError(
                f"need 0 < window_days <= lookback_days, got {self.window_days}, {self.lookback_days}"
            )

    @property
    def key(self) -> str:
        """The outcome column that holds the key (prediction id or entity)."""
        return self.prediction_id if self.prediction_id is not None else str(self.entity_key)

    @classmethod
    def from_spec(cls, feedback: Any) -> FeedbackKeys:
        """From a :class:`~mlops_ops.config.FeedbackSpec`."""
        entity = feedback.entity
        return cls(
            label=feedback.label,
            prediction_id=feedback.prediction_id,
            entity_key=entity.key if entity is not None else None,
            time=feedback.event_time,
            window_days=float(feedback.window_days),
            lookback_days=float(feedback.lookback),
        )


@dataclass
class JoinResult:
    """What one batch of outcomes gave.

    :ivar table: the joined outcomes, an Arrow table of ``JOINED_OUTCOME_SCHEMA``.
    :ivar counts: ``received``, the five buckets (:data:`BUCKETS`), ``late``, ``conflicting`` and
        ``joined_rows``.
    :ivar samples: per bucket (and ``late``), up to ``sample_size`` rows as received, each with a
        ``reason``.
    :ivar by_source: joined outcomes per prediction source (``online``, ``batch``).
    """

    table: pa.Table
    counts: dict[str, int]
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    by_source: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Counts, per-source numbers and samples as JSON-safe data."""
        from mlops_ops.core.jsonsafe import json_safe

        return json_safe({"counts": self.counts, "by_source": self.by_source, "samples": self.samples})


# -- candidate predictions -------------------------------------------------------------------------


def key_text(value: Any) -> str | None:
    """A key (prediction id or entity) as text: None when missing, integral numbers without ``.0``
    (``123.0`` and ``123`` are the same customer), strings stripped."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    text = str(value).strip()
    return text or None


#: the largest integer every float64 holds exactly
_FLOAT_EXACT = 2**53


def _numeric_keys(values: pd.Series, *, where: str, column: str) -> bool:
    """Whether the outcomes' key column was read as numbers (a CSV reader turns ``00123`` into
    123), so keys are matched by their integer value (:func:`_match_text`).

    :raises FeedbackError: a float column holds a key beyond 2**53, where float64 loses digits
        (``12345678901234567`` reads as ``12345678901234568``: another entity).
    """
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return False
    if pd.api.types.is_float_dtype(values):
        big = values[values.abs() > _FLOAT_EXACT]
        if len(big):
            raise FeedbackError(
                f"{where}: column {column!r} was read as floating-point numbers (an empty cell makes "
                f"a CSV reader do so) and holds {len(big)} key(s) beyond 2**53 whose last digits are "
                f"lost (e.g. {big.iloc[0]!r}); export the keys as quoted text, or without empty cells"
            )
    return True


def _match_text(text: Any, numeric: bool, uuid: bool = False) -> str | None:
    """The form a key is matched in: as given, or (``numeric``: the outcomes' key column was read
    as numbers) a whole number without leading zeros, so ``"00123"`` finds the outcome key 123;
    with ``uuid`` (prediction ids) a UUID in any case, with or without dashes and braces, as the
    lower-case hex the service logs."""
    if not isinstance(text, str):  # missing: None, or NaN once pandas stored it
        return None
    if uuid:
        bare = text.strip("{}").replace("-", "").lower()
        if _UUID_HEX.match(bare):
            return bare
    if not numeric or not _INT_TEXT.match(text):
        return text
    return str(int(text))


def _prediction_text(value: Any) -> str | None:
    """A predicted value as the service writes it (``str`` of the plain JSON value)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def _empty_predictions() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="object") for c in PREDICTION_COLUMNS})
    frame["predicted_at"] = pd.Series(dtype="datetime64[us, UTC]")
    frame["probability"] = pd.Series(dtype="float64")
    return frame


def predictions_from_log(log: pd.DataFrame, *, entity_key: str | None = None) -> pd.DataFrame:
    """Candidate predictions from prediction-log rows (:func:`~mlops_ops.serving.prediction_log.read_prediction_log`).

    Rows whose model failed (an ``error``, or no ``prediction``) predicted nothing and are left out.
    With ``entity_key`` the key is read from each row's ``input`` JSON (null when the request did
    not carry that column).

    :param log: prediction-log rows (needs ``prediction_id``, ``ts``, ``model_version``, ``arm``,
        ``prediction``, ``probability``, ``error``; ``input`` with ``entity_key``).
    :returns: a frame of :data:`PREDICTION_COLUMNS`, ``source`` = ``online``.
    """
    if log.empty:
        return _empty_predictions()
    ok = log["prediction"].notna() & log["error"].isna()
    rows = log.loc[ok]
    if entity_key is not None:
        keys = [key_text(json.loads(text).get(entity_key)) for text in rows["input"]]
    else:
        keys = [None] * len(rows)
    return pd.DataFrame(
        {
            "prediction_id": rows["prediction_id"].astype(str).to_numpy(dtype=object),
            "source": "online",
            "model_version": rows["model_version"].astype(str).to_numpy(dtype=object),
            "arm": rows["arm"].astype(str).to_numpy(dtype=object),
            "entity_key": pd.array(keys, dtype=object),
            "predicted_at": pd.to_datetime(rows["ts"], utc=True).dt.as_unit("us").to_numpy(),
            "prediction": rows["prediction"].astype(str).to_numpy(dtype=object),
            "probability": pd.to_numeric(rows["probability"], errors="coerce").to_numpy(dtype="float64"),
        }
    ).assign(predicted_at=lambda f: pd.to_datetime(f["predicted_at"], utc=True).dt.as_unit("us"))


def batch_prediction_id(interval_key: str, row: int) -> str:
    """The prediction id of row ``row`` (from 0) of the batch-scoring output ``interval_key``."""
    return f"batch:{interval_key}:{row}"


def predictions_from_batch(
    frame: pd.DataFrame,
    manifest: Mapping[str, Any],
    *,
    interval_key: str,
    entity_key: str | None = None,
    where: str = "the batch-scoring output",
) -> pd.DataFrame:
    """Candidate predictions from one batch-scoring output (``predictions.parquet`` + manifest).

    ``prediction_id`` is :func:`batch_prediction_id`; ``predicted_at`` the output's data interval
    start (its ``created`` time for a run without an interval).

    :raises FeedbackError: joining by entity and the output has no ``entity_key`` column.
    """
    n = len(frame)
    if entity_key is not None and entity_key not in frame.columns:
        raise FeedbackError(
            f"{where} has no column {entity_key!r} to join outcomes by entity (its columns: "
            f"{list(frame.columns)}); add {entity_key!r} to scoring.id_columns so that batch "
            "scoring keeps it, or join by prediction_id"
        )
    interval = manifest.get("data_interval") or {}
    when = pd.Timestamp(interval.get("start") or manifest["created"])
    when = when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")
    version = str(manifest.get("model_version"))
    keys = [key_text(v) for v in frame[entity_key]] if entity_key is not None else [None] * n
    probability = (
        pd.to_numeric(frame["probability"], errors="coerce").to_numpy(dtype="float64")
        if "probability" in frame.columns
        else [math.nan] * n
    )
    out = pd.DataFrame(
        {
            "prediction_id": [batch_prediction_id(interval_key, i) for i in range(n)],
            "source": "batch",
            "model_version": version,
            "arm": "batch",
            "entity_key": pd.array(keys, dtype=object),
            "predicted_at": pd.Series([when] * n, dtype="datetime64[us, UTC]"),
            "prediction": [_prediction_text(v) for v in frame["prediction"]],
            "probability": probability,
        }
    )
    return out.loc[out["prediction"].notna()].reset_index(drop=True)


# -- labels ----------------------------------------------------------------------------------------


def _bool_of(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return bool(value) if value in (0, 1) else None
    text = str(value).strip().lower()
    return {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False}.get(text)


def _number_of(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if text.lower() in ("true", "false"):
        return 1.0 if text.lower() == "true" else 0.0
    try:
        return float(text)
    except ValueError:
        return None


def label_form(task: str, classes: Iterable[str]) -> str:
    """How labels are written for this model: ``float`` (regression), or for a classifier the form
    of its classes as predicted: ``bool`` (``True``/``False``), ``int`` (``0``, ``1``), ``float``
    (``0.0``) or ``text`` (any other class names; also when no class is known)."""
    if task == "regression":
        return "float"
    texts = set(classes)
    if not texts:
        return "text"
    if texts <= {"True", "False"}:
        return "bool"
    if all(_INT_TEXT.match(t) for t in texts):
        return "int"
    if all(_number_of(t) is not None and t.lower() not in ("true", "false") for t in texts):
        return "float"
    return "text"


def label_texts(
    values: pd.Series, form: str, *, where: str, column: str, classes: Iterable[str] = ()
) -> pd.Series:
    """``values`` (no missing ones) as label text in ``form`` (:func:`label_form`).

    :raises FeedbackError: a value with no such form (``"yes"`` for a 0/1 classifier, ``1.5`` for
        integer classes), or text labels none of which is one of two or more known ``classes``
        (``1``/``0`` for ``yes``/``no``), naming ``where``, ``column``, the first bad values and
        the fix.
    """

    def convert(value: Any) -> str | None:
        if hasattr(value, "item") and not isinstance(value, str):
            value = value.item()
        if form == "bool":
            flag = _bool_of(value)
            return None if flag is None else str(flag)
        if form in ("int", "float"):
            number = _number_of(value)
            if number is None or not math.isfinite(number):
                return None
            if form == "int":
                return str(int(number)) if number.is_integer() else None
            return str(number)
        text = str(value).strip()
        return text if text in known else folded.get(text.casefold(), text)

    known = set(classes)
    # a text label differing from one class only in case (``Yes`` for ``yes``) is that class
    folds = [c.casefold() for c in known]
    folded = {c.casefold(): c for c in known if folds.count(c.casefold()) == 1}
    converted = values.map(convert)
    if form == "text" and len(known) >= 2 and len(converted) and not converted.isin(known).any():
        # not one label is a class: the export writes outcomes in another form (1/0 for yes/no)
        shown = sorted({repr(v) for v in values.tolist()})[:5]
        raise FeedbackError(
            f"{where}: column {column!r} has {len(values)} label(s) and none of them is one of the "
            f"model's classes {sorted(known)}: {', '.join(shown)}; write the outcome as the model's "
            "class in the export, or point monitoring.feedback.label at the column holding it"
        )
    bad = values[converted.isna()]
    if len(bad):
        shown = sorted({repr(v) for v in bad.tolist()})[:5]
        names = sorted(known)
        expected = {
            "bool": "True or False (or 1/0)",
            "int": "whole numbers like the classes",
            "float": "numbers",
        }.get(form, "text")
        raise FeedbackError(
            f"{where}: column {column!r} has {len(bad)} label(s) that are not in the form of the "
            f"model's predictions ({expected}{', classes ' + str(names) if names else ''}): {', '.join(shown)}; "
            f"write the outcome as the model's class (e.g. {names[0] if names else '1'!r}) in the "
            "export, or point monitoring.feedback.label at the column holding it"
        )
    return converted.astype(object)


# -- the join --------------------------------------------------------------------------------------


def join_outcomes(
    outcomes: pd.DataFrame,
    predictions: pd.DataFrame,
    *,
    keys: FeedbackKeys,
    task: str,
    run_start: dt.datetime,
    run_end: dt.datetime,
    already_joined: Iterable[str] | Mapping[str, str] = (),
    where: str = "the outcome batch",
    sample_size: int = 5,
) -> JoinResult:
    """Join one batch of outcome rows to the predictions they answer (see the module docstring for
    the buckets and the matching rule).

    :param outcomes: the rows received (any columns; the ones of ``keys`` are read).
    :param predictions: candidate predictions, :data:`PREDICTION_COLUMNS` (concatenate
        :func:`predictions_from_log` and :func:`predictions_from_batch`).
    :param task: ``classification`` or ``regression`` (how labels are written).
    :param run_start: the run's interval start (aware): event times before it are ``late``.
    :param run_end: the run's interval end (aware): the event time of outcomes without a time
        column, and ``joined_at`` of every joined row.
    :param already_joined: prediction ids joined by earlier runs, or a mapping of them to the
        labels they were joined with (then a duplicate with another label is ``conflicting``).
    :param where: the source's name, for messages.
    :returns: the :class:`JoinResult`.
    :raises FeedbackError: a configured column is absent, or a label has no form of the model's
        predictions.
    :raises ValueError: a naive ``run_start``/``run_end``.
    """
    for name, value in (("run_start", run_start), ("run_end", run_end)):
        if value.tzinfo is None:
            raise ValueError(f"{name} {value!r} has no time zone")
    needed = [keys.label, keys.key, *([keys.time] if keys.time else [])]
    missing = [c for c in needed if c not in outcomes.columns]
    if missing:
        raise FeedbackError(
            f"{where} has no column(s) {missing} (its columns: {list(outcomes.columns)}"
            f"{_likely_columns(missing, [str(c) for c in outcomes.columns])}); fix the export or "
            "monitoring.feedback (label, prediction_id / entity.key, time / entity.time)"
        )
    n = len(outcomes)
    rows = outcomes.reset_index(drop=True)
    bucket = pd.Series([""] * n, dtype=object)
    reason = pd.Series([""] * n, dtype=object)

    def assign(mask: pd.Series, name: str, why: str) -> None:
        mask = mask & (bucket == "")
        bucket[mask] = name
        reason[mask] = why

    # invalid: missing label, key or time
    key = rows[keys.key].map(key_text)
    numeric = _numeric_keys(rows[keys.key], where=where, column=keys.key)
    by_id = keys.prediction_id is not None
    key = key.map(lambda text: _match_text(text, numeric, by_id))
    blank = rows[keys.label].map(lambda v: isinstance(v, str) and not v.strip()).astype(bool)
    no_label = rows[keys.label].isna() | blank  # a blank cell kept as text is no outcome
    assign(no_label, "invalid", f"no label in {keys.label!r}")
    assign(key.isna(), "invalid", f"no key in {keys.key!r}")
    end_ts = pd.Timestamp(run_end).tz_convert("UTC")
    if keys.time is not None:
        raw_time = rows[keys.time]
        outcome_at = event_times(raw_time)
        assign(raw_time.isna(), "invalid", f"no event time in {keys.time!r}")
        unreadable = f"event time in {keys.time!r} is not a date-time"
        if _is_number_column(raw_time):
            unreadable += " (numbers are read as Unix epoch seconds; write milliseconds / 1000)"
        assign(outcome_at.isna(), "invalid", unreadable)
    else:
        outcome_at = pd.Series([end_ts] * n, dtype="datetime64[us, UTC]")

    preds = predictions.loc[:, list(PREDICTION_COLUMNS)]
    classes = sorted(set(preds["prediction"].dropna().astype(str)))
    form = label_form(task, classes)
    labels = pd.Series([None] * n, dtype=object)
    has_label = ~no_label
    if has_label.any():
        labels[has_label] = label_texts(
            rows.loc[has_label, keys.label], form, where=where, column=keys.label, classes=classes
        ).to_numpy()

    if task == "classification" and len(classes) == 2 and preds["probability"].notna().any():
        # predictions with a positive-class probability: a binary model, no third class exists
        foreign = has_label & ~labels.isin(classes) & (bucket == "")
        for i in foreign[foreign].index:
            bucket[i] = "invalid"
            reason[i] = f"the label {labels[i]!r} is not one of the binary model's classes {classes}"

    # match each valid row to one prediction (id, predicted_at)
    events = preds.groupby("prediction_id", sort=True, as_index=False).agg(
        predicted_at=("predicted_at", "min"), entity_key=("entity_key", "first")
    )
    source_key = events["prediction_id"] if keys.prediction_id is not None else events["entity_key"]
    events["match"] = source_key.map(lambda text: _match_text(text, numeric, by_id))
    candidates = pd.DataFrame({"row": range(n), "key": key, "outcome_at": outcome_at})
    candidates = candidates.loc[bucket == ""]
    if keys.prediction_id is not None:
        # read as numbers, "0123" and "123" are one key: an id matching both matches neither
        unique = events.drop_duplicates("match", keep=False)
        matched = candidates.merge(
            unique[["match", "prediction_id", "predicted_at"]], left_on="key", right_on="match", how="left"
        ).drop(columns="match")
    else:
        matched = _match_entities(candidates, events)
    matched = matched.set_index("row").reindex(candidates["row"])
    delay = matched["outcome_at"] - matched["predicted_at"]
    lookback = pd.Timedelta(days=keys.lookback_days)
    found = matched["prediction_id"].notna() & (delay <= lookback)
    index = matched.index
    assign(
        _on(index, n, matched["prediction_id"].notna() & ~found),
        "orphan",
        f"its prediction was made more than lookback_days={keys.lookback_days:g} before the event "
        "time (a wrong year or time zone?)",
    )
    nothing = "no prediction has this key" + ("" if by_id else " at or before the event time")
    assign(_on(index, n, ~found), "orphan", nothing)
    assign(
        _on(index, n, found & (delay < pd.Timedelta(0))),
        "invalid",
        "the event time is before its prediction",
    )
    assign(
        _on(index, n, found & (delay > pd.Timedelta(days=keys.window_days))),
        "out_of_window",
        f"the prediction is more than window_days={keys.window_days:g} older than the outcome",
    )
    prediction_id = pd.Series([None] * n, dtype=object)
    prediction_id[index.to_numpy()] = matched["prediction_id"].to_numpy()

    # duplicates: already joined, or a second row for one prediction in this batch
    earlier = set(already_joined)
    by_earlier = prediction_id.isin(earlier) & (bucket == "")
    assign(prediction_id.isin(earlier), "duplicate", "this prediction's outcome was joined by an earlier run")
    order = pd.DataFrame({"pid": prediction_id, "at": outcome_at, "row": range(n)}).loc[bucket == ""]
    order = order.sort_values(["at", "row"], kind="stable")
    again = order["pid"].duplicated(keep="first")
    in_batch = _on(order.index[again.to_numpy()], n)
    assign(in_batch, "duplicate", "another row of this batch answers this prediction first")
    # the label kept for each prediction: an earlier run's (when given), else this batch's first
    kept = dict(already_joined) if isinstance(already_joined, Mapping) else {}
    first = order.loc[~again.to_numpy()]
    kept.update(zip(first["pid"], labels[first.index.to_numpy()], strict=True))
    kept_label = prediction_id.map(kept)
    conflicting = (by_earlier | in_batch) & kept_label.notna() & (kept_label != labels)
    for i in conflicting[conflicting].index:
        reason[i] += f", with another label ({kept_label[i]!r} kept, {labels[i]!r} not)"
    joined = bucket == ""
    bucket[joined] = "joined"
    reason[joined] = "joined to its prediction"
    start_ts = pd.Timestamp(run_start).tz_convert("UTC")
    late = joined & (outcome_at < start_ts) if keys.time is not None else joined & False
    reason[late] = "its event time is before this run's interval: it arrived in a later run"

    table = _joined_table(
        rows.loc[joined], prediction_id[joined], outcome_at[joined], labels[joined], preds, keys, end_ts
    )
    counts = {"received": n, **{b: int((bucket == b).sum()) for b in BUCKETS}}
    counts["late"] = int(late.sum())
    counts["conflicting"] = int(conflicting.sum())
    counts["joined_rows"] = table.num_rows
    by_source: dict[str, int] = {}
    if joined.any():
        source_of = preds.drop_duplicates("prediction_id").set_index("prediction_id")["source"]
        by_source = {str(k): int(v) for k, v in prediction_id[joined].map(source_of).value_counts().items()}
    samples = {
        name: _samples(rows, reason, mask, sample_size)
        for name, mask in [*((b, bucket == b) for b in BUCKETS), ("late", late)]
        if mask.any()
    }
    return JoinResult(table=table, counts=counts, samples=samples, by_source=by_source)


def _likely_columns(missing: list[str], columns: list[str]) -> str:
    """``; did you mean 'Churned' for 'churned'?`` for the missing columns a present one resembles
    (case, spaces, a typo), else empty."""
    import difflib

    folded = {c.strip().casefold(): c for c in columns}
    guesses = []
    for name in missing:
        close = difflib.get_close_matches(name.strip().casefold(), list(folded), n=1, cutoff=0.75)
        if close:
            guesses.append(f"{folded[close[0]]!r} for {name!r}")
    return f"; did you mean {', '.join(guesses)}?" if guesses else ""


def _on(index: pd.Index, n: int, mask: pd.Series | None = None) -> pd.Series:
    """A full-length row mask, true at ``index`` (where ``mask`` holds)."""
    out = pd.Series(False, index=range(n))
    chosen = index if mask is None else index[mask.to_numpy()]
    out[chosen.to_numpy()] = True
    return out


def event_times(raw: pd.Series) -> pd.Series:
    """Event times as UTC timestamps (naive ones read as UTC, numbers as Unix epoch seconds, a date
    alone, ``2026-03-10`` or a ``date``, as the last microsecond of that day); NaT when unreadable (or, as seconds, beyond the year 2262: epoch milliseconds)."""
    if pd.api.types.is_datetime64_any_dtype(raw):
        stamps = pd.to_datetime(raw, utc=True)
    elif _is_number_column(raw):
        seconds = pd.to_numeric(raw, errors="coerce").astype("float64")
        seconds = seconds.where(seconds.abs() < _MAX_EPOCH_SECONDS)
        stamps = pd.to_datetime(seconds, unit="s", utc=True, errors="coerce")
    else:
        values = raw.astype(object).where(raw.notna(), None)
        stamps = pd.to_datetime(values, utc=True, errors="coerce", format="mixed")
        # a date alone says "that day": read as its last instant, so it answers that day's predictions
        date_only = values.map(_is_date_only).astype(bool)
        stamps = stamps.where(~date_only, stamps + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1))
    return stamps.dt.as_unit("us").reset_index(drop=True)


_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _is_date_only(value: Any) -> bool:
    if isinstance(value, str):
        return bool(_DATE_ONLY.match(value.strip()))
    return isinstance(value, dt.date) and not isinstance(value, dt.datetime)


#: epoch seconds beyond this are not a pandas timestamp (about the year 2262)
_MAX_EPOCH_SECONDS = 9.2e9


def _is_number_column(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _match_entities(candidates: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """Each candidate's latest prediction for its entity at or before its event time (ties: the
    greatest prediction id); ``prediction_id``/``predicted_at`` null when none."""
    right = events.loc[events["match"].notna(), ["match", "predicted_at", "prediction_id"]]
    right = right.rename(columns={"match": "key"}).astype({"key": object})
    right = right.sort_values(["predicted_at", "prediction_id"], kind="stable")
    left = candidates.astype({"key": object}).sort_values("outcome_at", kind="stable")
    if left.empty or right.empty:
        return left.assign(
            prediction_id=None, predicted_at=pd.Series(pd.NaT, index=left.index, dtype="datetime64[us, UTC]")
        )
    return pd.merge_asof(
        left,
        right,
        left_on="outcome_at",
        right_on="predicted_at",
        by="key",
        direction="backward",
        allow_exact_matches=True,
    )


def _joined_table(
    rows: pd.DataFrame,
    prediction_id: pd.Series,
    outcome_at: pd.Series,
    labels: pd.Series,
    preds: pd.DataFrame,
    keys: FeedbackKeys,
    joined_at: pd.Timestamp,
) -> pa.Table:
    """One row per (joined outcome, model row of its prediction), in the contract's columns."""
    if rows.empty:
        return JOINED_OUTCOME_SCHEMA.empty_table()
    answered = pd.DataFrame(
        {
            "prediction_id": prediction_id.to_numpy(),
            "outcome_at": outcome_at.to_numpy(),
            "label": labels.to_numpy(),
            "outcome_key": rows[keys.key].map(key_text).to_numpy() if keys.entity_key else None,
        }
    )
    merged = answered.merge(preds, on="prediction_id", how="inner", validate="one_to_many")
    merged = merged.sort_values(["outcome_at", "prediction_id", "arm"], kind="stable")
    # by entity: the key as the prediction's request / scoring input wrote it (``00123``, also when
    # the export's column was read as numbers, 123); by prediction id: none
    merged["entity_key"] = merged["entity_key"] if keys.entity_key else merged["outcome_key"]
    merged["joined_at"] = joined_at
    frame = merged.loc[:, list(JOINED_COLUMNS)].reset_index(drop=True)
    for column in ("predicted_at", "outcome_at", "joined_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True).dt.as_unit("us")
    return pa.Table.from_pandas(frame, schema=JOINED_OUTCOME_SCHEMA, preserve_index=False)


def _samples(rows: pd.DataFrame, reason: pd.Series, mask: pd.Series, size: int) -> list[dict[str, Any]]:
    """The first ``size`` rows under ``mask``, as received, with their reason."""
    from mlops_ops.core.jsonsafe import json_safe

    chosen = rows.loc[mask.to_numpy()].head(size)
    out = []
    for i, record in zip(chosen.index, chosen.to_dict(orient="records"), strict=True):
        out.append({"row": int(i), **json_safe({str(k): v for k, v in record.items()}), "reason": reason[i]})
    return out
