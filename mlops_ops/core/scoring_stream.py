"""Batch scoring in bounded memory: Parquet row batches in, one model call per batch, row groups out.

:func:`score_parquet` reads the snapshot's feature and id columns in batches of about 32 MiB
of features (:func:`batch_rows_for`), coerces each batch to the model version's schema, runs the
model once per batch (:func:`predict_batch`) and writes the batch's predictions as one Parquet row group to a sink
as soon as they exist, hashing the bytes on the way. Memory is one batch (its input, the model's
working set and its output), whatever the number of rows.

**Labels from probabilities.** A classifier with ``predict_proba`` is called once per batch:
``predict_proba`` on the features after the pipeline's preprocessing. The label is derived from
the probabilities by scikit-learn's own rule, ``classes_[argmax(proba, axis=1)]`` (``np.argmax``
returns the first maximum: on a tie the class that sorts first in ``classes_`` wins), and only
where that rule *is* the estimator's ``predict``:

- ``proba``: the estimator's ``predict`` is literally that rule over its ``predict_proba``
  (random forests and extra trees, histogram gradient boosting): the labels are identical.
- ``score``: ``predict`` takes the argmax (or the sign, for two classes) of a score that
  ``predict_proba`` maps element-wise through a non-decreasing function (logistic regression and
  the other linear classifiers, gradient boosting, decision trees, naive Bayes, k-nearest
  neighbours, multi-layer perceptrons). Rounding can merge two scores into one probability but
  never reverse their order, so the rule agrees with ``predict`` except on rows whose two largest
  probabilities are within :data:`TIE_TOLERANCE`; those rows (rare: exact ties) are sent to the
  estimator's own ``predict``, so the labels are identical there too.
- anything else (an SVC with Platt scaling, an estimator this module does not know): the
  estimator's ``predict`` is called on the same preprocessed batch, so its labels are its own.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

#: Target size of one batch's features as float64: the model's working set is a few times this.
BATCH_BYTES = 32 << 20
#: Rows per batch at most (and at least ``MIN_BATCH_ROWS``), whatever the width.
BATCH_ROWS = 1 << 18
MIN_BATCH_ROWS = 1 << 12


def batch_rows_for(columns: int) -> int:
    """Rows per batch for ``columns`` input columns: ``BATCH_BYTES`` of float64, within bounds
    (30 columns: 139,810 rows; 100 columns: 41,943)."""
    return max(MIN_BATCH_ROWS, min(BATCH_ROWS, BATCH_BYTES // (8 * max(columns, 1))))


#: Two class probabilities this close count as a tie that the estimator's ``predict`` settles.
TIE_TOLERANCE = 1e-9

_COMPRESSION = "zstd"


# -- one model call per batch ------------------------------------------------------------------


def _argmax_estimators() -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The ``predict`` functions of the ``proba`` and ``score`` rule (see the module docstring)."""
    from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier
    from sklearn.ensemble._forest import ForestClassifier
    from sklearn.linear_model._base import LinearClassifierMixin
    from sklearn.naive_bayes import _BaseNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.tree import BaseDecisionTree

    exact = (ForestClassifier.predict, HistGradientBoostingClassifier.predict)
    monotone = (
        LinearClassifierMixin.predict,
        GradientBoostingClassifier.predict,
        BaseDecisionTree.predict,
        _BaseNB.predict,
        KNeighborsClassifier.predict,
        MLPClassifier.predict,
    )
    return exact, monotone


def label_rule(estimator: Any) -> str | None:
    """How ``estimator.predict`` relates to its ``predict_proba``: ``"proba"``, ``"score"`` or None.

    Decided by the function the estimator's class resolves ``predict`` to, so a subclass that
    overrides ``predict`` is not trusted to follow its parent's rule. Single-output only.
    """
    predict = getattr(type(estimator), "predict", None)
    if predict is None or not hasattr(estimator, "predict_proba"):
        return None
    classes: Any = getattr(estimator, "classes_", None)
    if classes is None or isinstance(classes, list) or np.ndim(classes) != 1:
        return None  # multi-output: classes_ is a list of arrays
    exact, monotone = _argmax_estimators()
    if any(predict is f for f in exact):
        return "proba"
    if any(predict is f for f in monotone):
        return "score"
    return None


def _final_step(model: Any, x: Any, coerced: Any = None) -> tuple[Any, Any]:
    """The estimator that predicts, and ``x`` passed through the pipeline steps before it.

    A leading :class:`~mlops_ops.core.schema.SchemaCoercion` step with the schema ``x`` was
    already coerced to (``coerced``, a :class:`~mlops_ops.core.schema.Schema`) is skipped:
    coercing twice gives the same frame.
    """
    from sklearn.pipeline import Pipeline

    from mlops_ops.core.schema import SchemaCoercion

    while isinstance(model, Pipeline):
        steps = model[:-1]
        first = model.steps[0][1]
        if (
            coerced is not None
            and isinstance(first, SchemaCoercion)
            and first.schema is not None
            and dict(first.schema) == coerced.to_dict()
        ):
            steps = model[1:-1]
        if len(steps):
            x = steps.transform(x)
        model = model.steps[-1][1]
    return model, x


def _rows(x: Any, mask: np.ndarray) -> Any:
    if isinstance(x, pd.DataFrame | pd.Series):
        return x.iloc[np.flatnonzero(mask)]
    return x[mask]


def near_ties(proba: np.ndarray, tolerance: float = TIE_TOLERANCE) -> np.ndarray:
    """Rows whose two largest probabilities differ by at most ``tolerance`` (a bool mask)."""
    if proba.shape[1] < 2:
        return np.zeros(len(proba), dtype=bool)
    top2 = np.partition(proba, proba.shape[1] - 2, axis=1)[:, -2:]
    return np.asarray((top2[:, 1] - top2[:, 0]) <= tolerance)


def predict_batch(model: Any, x: Any, task: str, *, coerced: Any = None) -> dict[str, np.ndarray]:
    """Predictions of ``model`` on one batch, with one model call where the model allows it.

    :param model: a fitted estimator or pipeline.
    :param x: the batch, coerced to the model's schema (``n`` rows).
    :param task: ``classification`` or ``regression``.
    :param coerced: the :class:`~mlops_ops.core.schema.Schema` ``x`` was coerced to, if any (the
        model's own coercion step for that schema is then skipped).
    :returns: as :func:`mlops_ops.core.metrics.score_model`: ``pred`` (``n`` labels or values),
        and for a classifier with ``predict_proba`` also ``proba`` (``n``, the probability of the
        second class in ``classes``) and ``classes``; plus ``proba_all`` (``n`` x classes).
    :raises AttributeError, TypeError, ValueError: the model cannot score this batch.
    """
    if task != "classification" or not hasattr(model, "predict_proba"):
        final, xt = _final_step(model, x, coerced)
        return {"pred": np.asarray(final.predict(xt))}
    final, xt = _final_step(model, x, coerced)
    proba = np.asarray(final.predict_proba(xt))
    classes = np.asarray(getattr(final, "classes_", [0, 1]))
    rule = label_rule(final)
    if rule is None or proba.ndim != 2 or proba.shape[1] != len(classes):
        pred = np.asarray(final.predict(xt))
    else:
        pred = classes.take(np.argmax(proba, axis=1))
        if rule == "score":
            tied = near_ties(proba)
            if tied.any():
                pred[tied] = np.asarray(final.predict(_rows(xt, tied)))
    positive = proba[:, 1] if proba.ndim == 2 and proba.shape[1] > 1 else proba.reshape(len(proba), -1)[:, 0]
    return {"pred": pred, "proba": positive, "classes": classes, "proba_all": proba}


# -- reading and writing -----------------------------------------------------------------------


class HashingSink:
    """A binary file wrapper that hashes (SHA-256) and counts every byte written through it.

    Closing it does not close the wrapped file (its owner does).
    """

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._sha = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._raw.write(view)
        self._sha.update(view)
        self.size += len(view)
        return len(view)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._raw.flush()

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return False

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


@dataclass
class ScoredFile:
    """What :func:`score_parquet` wrote: ``rows`` rows of ``columns``, ``size`` bytes hashing to
    ``sha256``; ``probability_sum``/``probability_rows`` for the log line; ``classes`` of the
    classifier (None for a regressor or a classifier without ``predict_proba``)."""

    rows: int
    columns: list[str]
    sha256: str
    size: int
    probability_sum: float
    probability_rows: int
    classes: np.ndarray | None
    #: with ``explain_top_k``: ``k``, ``explainer``, ``output``, ``rows`` (explained), ``max_rows``
    explained: dict[str, Any] | None = None

    @property
    def positive(self) -> Any:
        """The class whose probability the ``probability`` column holds (JSON-safe), or None."""
        from mlops_ops.core.scoring import positive_class

        return positive_class({"classes": self.classes, "proba": self.classes})


def _constant(value: str | None, n: int, kind: pa.DataType) -> pa.Array:
    if value is None:
        return pa.nulls(n, type=kind)
    return pa.repeat(pa.scalar(value, type=kind), n)


def _stamp(value: dt.datetime | None) -> pd.Timestamp | None:
    return None if value is None else pd.Timestamp(value).tz_convert("UTC")


def prediction_table(
    ids: Sequence[pa.Array | pa.ChunkedArray],
    id_columns: Sequence[str],
    scores: dict[str, Any],
    *,
    task: str,
    model_version: str,
    input_sha256: str,
    interval_start: dt.datetime | None,
    interval_end: dt.datetime | None,
) -> pa.Table:
    """One batch's predictions as Arrow, with the columns and types of
    :func:`mlops_ops.core.scoring.assemble_predictions` (``prediction``, ``probability`` for
    classifiers, ``model_version``, ``input_sha256``, ``data_interval_start``/``_end`` as
    ``timestamp[ns, UTC]``)."""
    pred = np.asarray(scores["pred"])
    n = len(pred)
    columns: dict[str, Any] = dict(zip(id_columns, ids, strict=True))
    columns["prediction"] = pa.array(pred if task == "classification" else pred.astype("float64"))
    if task == "classification":
        proba = scores.get("proba")
        columns["probability"] = (
            pa.array(np.asarray(proba, dtype="float64"))
            if proba is not None
            else pa.array(np.full(n, np.nan, dtype="float64"))
        )
    columns["model_version"] = _constant(str(model_version), n, pa.string())
    columns["input_sha256"] = _constant(input_sha256, n, pa.string())
    stamp_type = pa.timestamp("ns", tz="UTC")
    for name, value in (("data_interval_start", interval_start), ("data_interval_end", interval_end)):
        stamp = _stamp(value)
        columns[name] = (
            pa.nulls(n, type=stamp_type)
            if stamp is None
            else pa.repeat(pa.scalar(stamp.value, type=stamp_type), n)
        )
    return pa.table(columns)


def open_parquet(source: Any) -> pq.ParquetFile:
    """A ``ParquetFile`` for a path or binary file, without pre-buffering.

    Pre-buffering (pyarrow's default) caches the byte ranges it coalesces for the whole iteration,
    so ``iter_batches`` would hold the file in memory by its end (measured: 0.9 GiB of Arrow
    memory after 5M rows x 27 columns, against 0.1 GiB without).
    """
    if isinstance(source, pq.ParquetFile):
        return source
    return pq.ParquetFile(source, pre_buffer=False)


def iter_batches(
    source: Any, columns: Sequence[str], batch_rows: int | None = None
) -> Iterator[pd.DataFrame]:
    """``columns`` of a Parquet file (a path, a binary file or a ``ParquetFile`` opened with
    :func:`open_parquet`) as pandas frames of at most ``batch_rows`` rows, with the dtypes
    ``pandas.read_parquet`` gives them."""
    file = open_parquet(source)
    for batch in file.iter_batches(
        batch_size=batch_rows or batch_rows_for(len(columns)), columns=list(columns)
    ):
        yield pa.Table.from_batches([batch]).to_pandas()


def score_parquet(
    source: Any,
    sink: Any,
    *,
    model: Any,
    task: str,
    schema: Any,
    id_columns: Sequence[str],
    model_version: str,
    input_sha256: str,
    interval_start: dt.datetime | None,
    interval_end: dt.datetime | None,
    where: str | None = None,
    batch_rows: int | None = None,
    explain_top_k: int = 0,
    explain_max_rows: int = 10_000,
    explain_background: pd.DataFrame | None = None,
) -> ScoredFile:
    """Score a Parquet file batch by batch and write the predictions to ``sink`` as Parquet.

    :param source: the input Parquet file (path, binary file or a ``ParquetFile`` opened with
        :func:`open_parquet`); only the schema's feature columns and ``id_columns`` are read.
    :param sink: a writable binary file; it receives one row group per batch (zstd), in input
        order, and is not closed.
    :param schema: the model version's :class:`~mlops_ops.core.schema.Schema`; each batch is
        coerced to it before the model sees it.
    :param batch_rows: rows per batch; default :func:`batch_rows_for` the columns read.
    :param explain_top_k: add the ``k`` largest SHAP contributions of each row (columns
        ``top<i>_feature``, ``top<i>_contribution``, i = 1..k, k at most the feature count; see
        :func:`mlops_ops.core.explain.top_contributions`); 0: none.
    :param explain_max_rows: only the first this many rows of the file are explained (the
        permutation fallback: at most :data:`~mlops_ops.core.explain.FALLBACK_MAX_ROWS`); later
        rows get nulls in those columns.
    :param explain_background: background rows of the linear and permutation explainers (the
        version's stored ones); default: each batch's own rows.
    :returns: a :class:`ScoredFile` with the rows, the output columns and the bytes' SHA-256.
    :raises DataError: a batch cannot be coerced (the message names the column and the value).
    :raises AttributeError, TypeError, ValueError: the model cannot score a batch.
    Whatever fails, the caller must discard what the sink holds.
    """
    from mlops_ops.core.training import prepare_features

    file = open_parquet(source)
    features = schema.feature_set
    wanted = list(dict.fromkeys([*features.all, *id_columns]))
    out = HashingSink(sink)
    writer: pq.ParquetWriter | None = None
    out_schema: pa.Schema | None = None
    rows, total, counted = 0, 0.0, 0
    classes: np.ndarray | None = None
    k = min(max(int(explain_top_k), 0), len(features.all))
    explained: dict[str, Any] | None = None
    if k:
        from mlops_ops.core.explain import FALLBACK_MAX_ROWS, explainer_kind

        kind = explainer_kind(model)
        budget = min(explain_max_rows, FALLBACK_MAX_ROWS) if kind == "permutation" else explain_max_rows
        explained = {"k": k, "explainer": kind, "output": None, "rows": 0, "max_rows": budget}
    try:
        rows_per_batch = batch_rows or batch_rows_for(len(wanted))
        for batch in file.iter_batches(batch_size=rows_per_batch, columns=wanted):
            table = pa.Table.from_batches([batch])
            frame = table.select(features.all).to_pandas()  # ids stay Arrow: copied, never converted
            x = prepare_features(frame, features, schema, where=where)
            scores = predict_batch(model, x, task, coerced=schema)
            if scores.get("classes") is not None:
                classes = scores["classes"]
            ids = [table.column(c) for c in id_columns]
            table = prediction_table(
                ids,
                id_columns,
                scores,
                task=task,
                model_version=model_version,
                input_sha256=input_sha256,
                interval_start=interval_start,
                interval_end=interval_end,
            )
            if explained is not None:
                table = _with_top_k(table, model, x, task, k, explained, explain_background)
            if writer is None:
                out_schema = table.schema
                writer = pq.ParquetWriter(out, out_schema, compression=_COMPRESSION)
            else:
                table = table.cast(out_schema)
            writer.write_table(table, row_group_size=max(len(table), 1))
            rows += len(table)
            proba = scores.get("proba")
            if proba is not None:
                finite = np.asarray(proba, dtype="float64")
                total += float(np.nansum(finite))
                counted += int(np.count_nonzero(~np.isnan(finite)))
        if writer is None:  # no rows: an empty file with the columns a scored batch would have
            empty = _empty_table(file, model, task, id_columns)
            if explained is not None:
                empty = _with_top_k(empty, model, None, task, k, explained, None)
            out_schema = empty.schema
            writer = pq.ParquetWriter(out, out_schema, compression=_COMPRESSION)
            writer.write_table(empty)
    finally:
        if writer is not None:
            writer.close()
    assert out_schema is not None
    return ScoredFile(
        rows, list(out_schema.names), out.hexdigest(), out.size, total, counted, classes, explained
    )


def _with_top_k(
    table: pa.Table,
    model: Any,
    x: pd.DataFrame | None,
    task: str,
    k: int,
    explained: dict[str, Any],
    background: pd.DataFrame | None,
) -> pa.Table:
    """``table`` with the top-``k`` columns: the first rows within the budget explained, the rest null."""
    from mlops_ops.core.explain import explain_pipeline, top_contributions

    n = table.num_rows
    features = np.full((k, n), None, dtype=object)
    contributions = np.full((k, n), np.nan)
    take = 0 if x is None else min(n, explained["max_rows"] - explained["rows"])
    if take > 0:
        assert x is not None
        part = x.iloc[:take]
        explanation = explain_pipeline(
            model, part, task=task, background=background, max_rows=take, fallback_max_rows=take
        )
        top = top_contributions(explanation, k)
        for i in range(k):
            features[i, :take] = top[f"top{i + 1}_feature"].to_numpy()
            contributions[i, :take] = top[f"top{i + 1}_contribution"].to_numpy()
        explained["rows"] += take
        explained["output"] = explanation.output
    for i in range(k):
        table = table.append_column(f"top{i + 1}_feature", pa.array(features[i], type=pa.string()))
        table = table.append_column(
            f"top{i + 1}_contribution", pa.array(contributions[i], type=pa.float64(), from_pandas=True)
        )
    return table


def _empty_table(file: pq.ParquetFile, model: Any, task: str, id_columns: Sequence[str]) -> pa.Table:
    from sklearn.pipeline import Pipeline

    ids = [pa.array([], type=file.schema_arrow.field(c).type) for c in id_columns]
    final = model
    while isinstance(final, Pipeline):
        final = final.steps[-1][1]
    classes = getattr(final, "classes_", None) if task == "classification" else None
    pred = np.asarray(classes)[:0] if classes is not None else np.zeros(0, dtype="float64")
    return prediction_table(
        ids,
        id_columns,
        {"pred": pred},
        task=task,
        model_version="",
        input_sha256="",
        interval_start=None,
        interval_end=None,
    )
