"""Training: the spec's estimator inside a preprocessing Pipeline, fitted on a deterministic split."""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlops_ops.core.evaluation import compute_metrics, score_model
from mlops_ops.core.features import FeatureSet, check_numeric, holdout_mask
from mlops_ops.errors import DataError, MlopsError

log = logging.getLogger(__name__)


MISSING = "__missing__"


class TrainingError(MlopsError, ValueError):
    """Training cannot start or did not produce a usable model."""


def load_estimator_class(import_path: str) -> type:
    module_name, _, attr = import_path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise TrainingError(
            f"cannot import module {module_name!r} for estimator {import_path!r}: {err}"
        ) from None
    try:
        cls = getattr(module, attr)
    except AttributeError:
        raise TrainingError(
            f"module {module_name!r} has no estimator {attr!r}; check model.estimator"
        ) from None
    if not inspect.isclass(cls) or not hasattr(cls, "fit"):
        raise TrainingError(f"{import_path!r} is not an estimator class with a fit() method")
    return cls


def make_estimator(import_path: str, params: dict[str, Any], seed: int) -> Any:
    cls = load_estimator_class(import_path)
    params = dict(params)
    accepted: Mapping[str, Any]
    try:
        accepted = inspect.signature(cls).parameters
    except (TypeError, ValueError):  # pragma: no cover - C-implemented constructors
        accepted = {}
    unknown = sorted(set(params) - set(accepted)) if accepted else []
    if unknown:
        raise TrainingError(
            f"{import_path} does not accept parameter(s) {unknown}; it accepts {sorted(accepted)}"
        )
    if "random_state" in accepted and "random_state" not in params:
        params["random_state"] = seed
    return cls(**params)


def detect_task(estimator: Any, declared: str) -> str:
    if declared != "auto":
        return declared
    from sklearn.base import is_classifier, is_regressor

    if is_classifier(estimator):
        return "classification"
    if is_regressor(estimator):
        return "regression"
    raise TrainingError(
        f"cannot tell whether {type(estimator).__name__} classifies or regresses; set model.task"
    )


def build_pipeline(estimator: Any, features: FeatureSet, schema: Any = None) -> Any:
    """Impute; scale numeric columns; one-hot encode categorical ones (unknown categories ignored).

    With a :class:`~mlops_ops.core.schema.Schema`, the first step coerces raw rows to it, so the
    logged model reads any later batch (or served request) as it was trained.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    transformers = []
    if features.numeric:
        transformers.append(
            (
                "numeric",
                Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]),
                list(features.numeric),
            )
        )
    if features.categorical:
        transformers.append(
            (
                "categorical",
                Pipeline(
                    [
                        # NaN, None and pandas' NA all mean "missing": one imputer for each spelling
                        (
                            "impute_na",
                            SimpleImputer(missing_values=pd.NA, strategy="constant", fill_value=MISSING),
                        ),
                        (
                            "impute_none",
                            SimpleImputer(missing_values=None, strategy="constant", fill_value=MISSING),
                        ),
                        ("impute", SimpleImputer(strategy="constant", fill_value=MISSING)),
                        (
                            "onehot",
                            OneHotEncoder(
                                handle_unknown="infrequent_if_exist", min_frequency=5, sparse_output=False
                            ),
                        ),
                    ]
                ),
                list(features.categorical),
            )
        )
    if not transformers:
        raise TrainingError(
            "no feature columns: list some under 'features' or add columns besides the target"
        )
    pre = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
    steps: list[tuple[str, Any]] = [("preprocess", pre), ("model", estimator)]
    if schema is not None:
        from mlops_ops.core.schema import SchemaCoercion

        steps.insert(0, ("schema", SchemaCoercion(schema.to_dict())))
    return Pipeline(steps)


def prepare_features(
    frame: pd.DataFrame, features: FeatureSet, schema: Any = None, *, where: str | None = None
) -> pd.DataFrame:
    """The model's input frame, coerced to ``schema`` (default: the feature lists' plain schema).

    Numeric columns become float64, categorical ones canonical object text (see
    :mod:`mlops_ops.core.schema`). Raises :class:`DataError` naming the column and the value
    that cannot be coerced.
    """
    from mlops_ops.core.schema import Schema

    if schema is None:
        schema = Schema.from_feature_set(features)
    return schema.coerce(frame, where=where)


def prepare_target(frame: pd.DataFrame, target: str, task: str) -> pd.Series:
    y = frame[target]
    n_missing = int(y.isna().sum())
    if n_missing:
        raise DataError(
            f"the target column {target!r} has {n_missing} missing value(s); drop or label those rows"
        )
    if task == "regression":
        check_numeric(frame, [target])
        return pd.to_numeric(y).astype("float64")
    if pd.api.types.is_float_dtype(y) and (y == y.round()).all():
        y = y.astype("int64")
    if y.nunique() != 2:
        raise DataError(
            f"the target column {target!r} has {y.nunique()} distinct values; "
            "classification pipelines need a binary target"
        )
    return y


@dataclass
class TrainingResult:
    """A fitted pipeline and how it was trained.

    ``sample`` describes the training sample when a cap applied (see :func:`sample_rows`): ``cap``,
    ``rows`` (trained on), ``available`` (training rows before sampling), ``seed``,
    ``stratified_by``; None when every training row was used.
    """

    model: Any
    task: str
    features: FeatureSet
    metrics: dict[str, float]
    n_train: int
    n_holdout: int
    params: dict[str, Any] = field(default_factory=dict)
    input_example: pd.DataFrame | None = None
    predictions_example: Any = None
    sample: dict[str, Any] | None = None
    #: the holdout's labels and ``score_model`` output (the CBPE reference, ``core.estimation``)
    holdout_target: Any = None
    holdout_scores: dict[str, Any] | None = None


#: quantile bins of a regression target when a training sample is stratified by it
REGRESSION_STRATA = 10


def sample_rows(frame: pd.DataFrame, target: str, cap: int, seed: int, task: str) -> pd.DataFrame:
    """At most ``cap`` rows of ``frame``: a seeded sample stratified by the target, in row order.

    Classification: each class keeps its share of the rows (largest remainders decide the last
    rows, every class present keeps at least one row). Regression: the same over
    :data:`REGRESSION_STRATA` quantile bins of the target. The same frame, cap and seed give the
    same rows.

    :param cap: the most rows to keep (a frame with fewer rows is returned unchanged).
    :raises DataError: ``cap`` is below the number of classes (each class needs a row).
    """
    if len(frame) <= cap:
        return frame
    y = frame[target]
    if task == "regression":
        values = pd.to_numeric(y, errors="coerce")
        strata = pd.qcut(values.rank(method="first"), q=min(REGRESSION_STRATA, len(frame)), labels=False)
    else:
        strata = y.astype("string").fillna("<missing>")
    codes, uniques = pd.factorize(strata, sort=True)
    counts = np.bincount(codes, minlength=len(uniques))
    if cap < len(uniques):
        raise DataError(
            f"model.max_training_rows={cap} is below the {len(uniques)} classes of {target!r}; raise it"
        )
    exact = counts * (cap / len(frame))
    take = np.maximum(np.floor(exact).astype(int), np.minimum(counts, 1))
    order = np.argsort(-(exact - np.floor(exact)), kind="stable")
    i = 0
    while take.sum() < cap:  # largest remainders first
        k = order[i % len(order)]
        if take[k] < counts[k]:
            take[k] += 1
        i += 1
    while take.sum() > cap:  # the minimum of one row per class overshot: trim the largest
        take[int(np.argmax(take))] -= 1
    rng = np.random.default_rng(seed)
    keep = np.zeros(len(frame), dtype=bool)
    for k, n in enumerate(take):
        rows = np.flatnonzero(codes == k)
        keep[rng.choice(rows, size=int(n), replace=False)] = True
    return frame.loc[keep]


def split(frame: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    mask = holdout_mask(frame, fraction, seed)
    return frame.loc[~mask], frame.loc[mask]


def train_model(
    frame: pd.DataFrame,
    *,
    target: str,
    features: FeatureSet,
    estimator: str,
    params: dict[str, Any],
    task: str = "auto",
    holdout_fraction: float = 0.25,
    seed: int = 42,
    min_rows: int = 20,
    schema: Any = None,
    max_training_rows: int | None = None,
) -> TrainingResult:
    """Fit the pipeline on the training side of the split and score it on the holdout side.

    ``schema`` (:class:`~mlops_ops.core.schema.Schema`): the frozen logical types; default, the
    plain schema of ``features``. ``max_training_rows``: fit on at most this many rows of the
    training side, sampled by :func:`sample_rows` (the holdout is never sampled); the result's
    ``sample`` records it. A feature with no value in any row raises :class:`DataError`.
    """
    from mlops_ops.core.schema import Schema
    from mlops_ops.core.schema_inference import empty_features

    if schema is None:
        schema = Schema.from_feature_set(features, target)
    empty = empty_features(frame, schema)
    if empty:
        raise DataError(
            f"feature column(s) {empty} are empty in every row: the model cannot learn from them. "
            "Fix the export, or remove them from features"
        )
    est = make_estimator(estimator, params, seed)
    task = detect_task(est, task)
    train, holdout = split(frame, holdout_fraction, seed)
    if len(train) < min_rows or len(holdout) < 2:
        raise DataError(
            f"too few rows to train: {len(train)} for training and {len(holdout)} for the holdout "
            f"(need at least {min_rows} and 2); add data or lower model.holdout_fraction"
        )
    sample = None
    if max_training_rows is not None and len(train) > max_training_rows:
        available = len(train)
        train = sample_rows(train, target, int(max_training_rows), seed, task)
        sample = {
            "cap": int(max_training_rows),
            "rows": len(train),
            "available": available,
            "seed": seed,
            "stratified_by": target,
        }
        log.info("training on a sample of %d of %d rows (stratified by %r)", len(train), available, target)
    x_train, y_train = prepare_features(train, features, schema), prepare_target(train, target, task)
    x_hold, y_hold = prepare_features(holdout, features, schema), prepare_target(holdout, target, task)
    pipeline = build_pipeline(est, features, schema)
    np.random.seed(seed)  # noqa: NPY002 - estimators that ignore random_state still draw from here
    try:
        pipeline.fit(x_train, y_train)
    except (ValueError, TypeError) as err:  # invalid parameter values surface only here
        raise TrainingError(f"{estimator} could not be fitted: {type(err).__name__}: {err}") from err
    scores = score_model(pipeline, x_hold, task)
    metrics = compute_metrics(task, y_hold.to_numpy(), scores)
    log.info("trained %s on %d rows, holdout %d rows: %s", estimator, len(train), len(holdout), metrics)
    example = x_train.head(5)
    return TrainingResult(
        model=pipeline,
        task=task,
        features=features,
        metrics=metrics,
        n_train=len(train),
        n_holdout=len(holdout),
        params={**est.get_params(deep=False)},
        input_example=example,
        predictions_example=pipeline.predict(example),
        sample=sample,
        holdout_target=y_hold.to_numpy(),
        holdout_scores=scores,
    )
