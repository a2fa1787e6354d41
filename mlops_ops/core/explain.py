"""SHAP explanations of a fitted pipeline, summed back to the pipeline's input columns.

The pipelines of :mod:`mlops_ops.core.training` are ``[SchemaCoercion,] ColumnTransformer,
estimator``. The estimator is explained in the space it sees (scaled numbers, one-hot columns);
the contributions of the transformed columns that come from one input column (the one-hot columns
of a categorical) are then added up, so each input column gets one contribution per row. SHAP
values are additive (Lundberg & Lee 2017, "A Unified Approach to Interpreting Model
Predictions"), so the sums keep additivity: per row, the contributions add up to the model's
output minus the expected value.

Explainers, by the estimator (the ``shap`` package):

* **tree** (``shap.TreeExplainer``, path-dependent, no background): scikit-learn's tree ensembles,
  gradient boosting (histogram too), XGBoost, LightGBM. Output: log-odds of the positive class for
  boosted classifiers, probability for forests and single trees, the prediction for regressors.
* **linear** (``shap.LinearExplainer``, independent masker on a background sample): estimators
  with ``coef_`` and ``intercept_``. Output: log-odds for logistic regression (the decision
  function: ``margin`` for a linear classifier without probabilities), the prediction for regressors.
* **permutation** (``shap.PermutationExplainer``, independent masker on a background sample): any
  other estimator. Output: probability of the positive class (the prediction for regressors). It
  costs ``permutations * (2F + 1) * fallback_background_rows`` model rows per explained row (F
  transformed columns), hence its smaller row budget and background (k-nearest neighbours on 16
  transformed columns: 8 to 15 s for 50 rows, benchmarks/explain).

Binary classifiers are explained for the positive class (``classes_[1]``). Rows beyond the budget
are a seeded sample without replacement.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlops_ops.errors import MlopsError

log = logging.getLogger(__name__)

#: rows explained at most by the tree and linear explainers (per hundred rows: ~10 ms linear,
#: ~30-90 ms boosted trees, ~1.5 s for 100 unbounded forest trees; benchmarks/explain)
MAX_ROWS = 1000
#: rows explained at most by the model-agnostic fallback (model calls grow with the background)
FALLBACK_MAX_ROWS = 50
#: rows of the background sample of the linear explainer
BACKGROUND_ROWS = 100
#: rows of the background sample of the permutation fallback
FALLBACK_BACKGROUND_ROWS = 25
#: permutations per row of the fallback (each is exactly additive; more lower the variance)
PERMUTATIONS = 2
#: the output spaces an explanation can be in
OUTPUT_SPACES = ("log_odds", "margin", "probability", "prediction")


class ExplanationError(MlopsError, ValueError):
    """The pipeline cannot be explained (its shape or its inputs)."""


@dataclass(frozen=True)
class Explanation:
    """SHAP values of some rows, per input column.

    :param values: rows x input columns (float64); the index is the explained rows' index.
    :param positions: positions of the explained rows in the frame given (for a sample).
    :param expected_value: the model's expected output over the background (the base value).
    :param explainer: ``tree``, ``linear`` or ``permutation``.
    :param output: the output space of values and expected value (:data:`OUTPUT_SPACES`).
    :param available: rows given (``len(values) < available`` when the budget sampled them).
    :param seed: seed of the row sample and of the explainer.
    """

    values: pd.DataFrame
    positions: np.ndarray
    expected_value: float
    explainer: str
    output: str
    available: int
    seed: int

    @property
    def rows(self) -> int:
        return len(self.values)

    def mean_abs(self) -> dict[str, float]:
        """Mean |SHAP| per input column, in the output space's units, largest first."""
        means = self.values.abs().mean(axis=0).sort_values(ascending=False, kind="stable")
        return {str(k): float(v) for k, v in means.items()}

    def to_dict(self) -> dict[str, Any]:
        """The global profile as stored (``explain/shap_importance.json``): explainer, output,
        rows, available, seed, expected_value, ``mean_abs_shap`` and its ``share`` per column."""
        means = self.mean_abs()
        total = sum(means.values())
        return {
            "explainer": self.explainer,
            "output": self.output,
            "rows": self.rows,
            "available": self.available,
            "seed": self.seed,
            "expected_value": self.expected_value,
            "mean_abs_shap": means,
            "share": {k: (v / total if total > 0 else 0.0) for k, v in means.items()},
        }


def split_pipeline(pipeline: Any) -> tuple[Any, Any, Any]:
    """``(transform, preprocess, estimator)``: the steps before the estimator, the
    ColumnTransformer among them, and the estimator.

    :raises ExplanationError: not a scikit-learn Pipeline ending with an estimator after a
        ColumnTransformer.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) < 2:
        raise ExplanationError(
            f"cannot explain a {type(pipeline).__name__}: expected the training Pipeline "
            "(schema, preprocess, model); retrain the model version"
        )
    pre = [step for _, step in pipeline.steps[:-1] if isinstance(step, ColumnTransformer)]
    if len(pre) != 1:
        raise ExplanationError("the pipeline has no single ColumnTransformer step to map features back")
    return pipeline[:-1], pre[0], pipeline.steps[-1][1]


def input_columns(preprocess: Any) -> list[str]:
    """For each transformed column of a fitted ColumnTransformer, the input column it comes from.

    A transformer's output is named after its input (``x``) or ``<input>_<category>`` (one-hot):
    each output goes to the longest input name it equals or starts with followed by ``_``, and the
    outputs must follow the inputs' order (else :class:`ExplanationError`).
    """
    width = sum(s.stop - s.start for s in preprocess.output_indices_.values())
    owner: list[str | None] = [None] * width
    for name, transformer, columns in preprocess.transformers_:
        where = preprocess.output_indices_.get(name)
        if transformer == "drop" or where is None or where.stop == where.start:
            continue
        columns = [str(c) for c in columns]
        names = columns if transformer == "passthrough" else list(transformer.get_feature_names_out(columns))
        if len(names) != where.stop - where.start:
            raise ExplanationError(f"transformer {name!r} names {len(names)} columns for {where}")
        last = 0
        for offset, out in enumerate(map(str, names)):
            matches = [i for i, c in enumerate(columns) if out == c or out.startswith(c + "_")]
            if not matches:
                raise ExplanationError(
                    f"cannot map transformed column {out!r} of {name!r} to an input column"
                )
            index = max(matches, key=lambda i: len(columns[i]))
            if index < last:
                raise ExplanationError(f"transformed column {out!r} of {name!r} is out of its inputs' order")
            last = index
            owner[where.start + offset] = columns[index]
    if any(o is None for o in owner):
        raise ExplanationError("some transformed columns come from no input column")
    return [str(o) for o in owner]


def _dense(matrix: Any) -> np.ndarray:
    if hasattr(matrix, "toarray"):
        matrix = matrix.toarray()
    return np.asarray(matrix, dtype="float64")


def _sample(n: int, budget: int, seed: int) -> np.ndarray:
    """Sorted positions of at most ``budget`` of ``n`` rows (seeded, without replacement)."""
    if n <= budget:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=budget, replace=False))


def _is_classifier(estimator: Any, task: str) -> bool:
    return task == "classification" or hasattr(estimator, "classes_")


def model_output(pipeline: Any, x: pd.DataFrame, output: str) -> np.ndarray:
    """The pipeline's output on ``x`` in ``output`` space (shape ``(rows,)``): what the SHAP
    values of an :class:`Explanation` in that space add up to (with the expected value).

    ``log_odds``: the decision function (else the logit of the positive class's probability);
    ``margin``: the decision function; ``probability``: ``predict_proba[:, 1]``; ``prediction``:
    ``predict``.
    """
    transform, _, estimator = split_pipeline(pipeline)
    xt = _dense(transform.transform(x))
    return _output_function(estimator, output)(xt)


def _output_function(estimator: Any, output: str) -> Any:
    if output in ("log_odds", "margin") and hasattr(estimator, "decision_function"):
        return lambda xt: np.asarray(estimator.decision_function(xt), dtype="float64").reshape(len(xt))
    if output == "log_odds":

        def logit(xt: np.ndarray) -> np.ndarray:
            p = np.clip(np.asarray(estimator.predict_proba(xt))[:, 1], 1e-15, 1 - 1e-15)
            return np.asarray(np.log(p / (1 - p)), dtype="float64")

        return logit
    if output == "probability":
        return lambda xt: np.asarray(estimator.predict_proba(xt), dtype="float64")[:, 1]
    if output == "prediction":
        return lambda xt: np.asarray(estimator.predict(xt), dtype="float64").reshape(len(xt))
    raise ExplanationError(f"unknown output space {output!r}; one of {OUTPUT_SPACES}")


def _tree(estimator: Any, xt: np.ndarray, classifier: bool) -> tuple[np.ndarray, float, str] | None:
    """Tree SHAP (path-dependent), or None when shap has no tree algorithm for the estimator."""
    import shap
    from shap.utils._exceptions import InvalidModelError

    try:
        explainer = shap.TreeExplainer(estimator)
    except InvalidModelError:
        return None
    tree_output = str(getattr(explainer.model, "tree_output", ""))
    if classifier and tree_output not in ("log_odds", "probability"):
        return None  # a classifier whose trees output something else: the fallback is clearer
    values = np.asarray(explainer.shap_values(xt, check_additivity=False), dtype="float64")
    expected = np.ravel(np.asarray(explainer.expected_value, dtype="float64"))
    if values.ndim == 3:  # one slice per class: the positive class
        values, expected = values[..., -1], expected[-1:]
    output = tree_output if classifier else "prediction"
    return values, float(expected[-1]), output


def _is_linear(estimator: Any) -> bool:
    coef = getattr(estimator, "coef_", None)
    return coef is not None and hasattr(estimator, "intercept_") and np.asarray(coef).squeeze().ndim <= 1


def explainer_kind(pipeline: Any) -> str:
    """The explainer :func:`explain_pipeline` uses for ``pipeline``: ``tree``, ``linear`` or
    ``permutation`` (so a caller can budget before explaining)."""
    import shap
    from shap.utils._exceptions import InvalidModelError

    _, _, estimator = split_pipeline(pipeline)
    try:
        explainer = shap.TreeExplainer(estimator)
    except InvalidModelError:
        return "linear" if _is_linear(estimator) else "permutation"
    tree_output = str(getattr(explainer.model, "tree_output", ""))
    if hasattr(estimator, "classes_") and tree_output not in ("log_odds", "probability"):
        return "linear" if _is_linear(estimator) else "permutation"
    return "tree"


def explain_pipeline(
    pipeline: Any,
    x: pd.DataFrame,
    *,
    task: str,
    background: pd.DataFrame | None = None,
    max_rows: int = MAX_ROWS,
    fallback_max_rows: int = FALLBACK_MAX_ROWS,
    background_rows: int = BACKGROUND_ROWS,
    fallback_background_rows: int = FALLBACK_BACKGROUND_ROWS,
    permutations: int = PERMUTATIONS,
    seed: int = 0,
) -> Explanation:
    """SHAP values of ``pipeline`` on (a seeded sample of) the rows of ``x``, per input column.

    :param pipeline: a fitted training Pipeline (see :func:`split_pipeline`).
    :param x: input rows (the model's feature columns; coerced by the pipeline's schema step).
    :param task: ``classification`` (binary: the positive class ``classes_[1]``) or ``regression``.
    :param background: rows whose distribution the linear and permutation explainers mask with
        (at most ``background_rows`` of them, seeded); default: ``x``. The tree explainer needs none.
    :param max_rows: rows explained at most (tree, linear); beyond, a seeded sample.
    :param fallback_max_rows: rows explained at most by the permutation fallback.
    :param background_rows: background rows of the linear explainer.
    :param fallback_background_rows: background rows of the permutation fallback.
    :param permutations: permutations per row of the fallback.
    :param seed: seed of the samples and of the permutations.
    :returns: an :class:`Explanation` (values: rows x input columns, in its ``output`` space).
    :raises ExplanationError: not a training Pipeline, or no rows.
    """
    if len(x) == 0:
        raise ExplanationError("no rows to explain")
    transform, preprocess, estimator = split_pipeline(pipeline)
    owners = input_columns(preprocess)
    classifier = _is_classifier(estimator, task)
    if classifier and len(getattr(estimator, "classes_", [0, 1])) != 2:
        raise ExplanationError("only binary classifiers are explained (the positive class)")

    positions = _sample(len(x), max_rows, seed)
    xt = _dense(transform.transform(x.iloc[positions]))
    result = _tree(estimator, xt, classifier)
    kind = "tree"
    if result is None:
        import shap

        bg_frame = x if background is None else background
        linear = _is_linear(estimator)
        size = background_rows if linear else fallback_background_rows
        bg = _dense(transform.transform(bg_frame.iloc[_sample(len(bg_frame), size, seed)]))
        masker = shap.maskers.Independent(bg, max_samples=size)
        if linear:
            kind = "linear"
            explainer = shap.LinearExplainer(estimator, masker)
            values = np.asarray(explainer.shap_values(xt), dtype="float64")
            expected = float(np.ravel(explainer.expected_value)[-1])
            if values.ndim == 3:
                values = values[..., -1]
            output = (
                "prediction"
                if not classifier
                else "log_odds"
                if hasattr(estimator, "predict_proba")
                else "margin"
            )
        else:
            kind = "permutation"
            keep = positions[_sample(len(positions), fallback_max_rows, seed)]
            positions, xt = keep, _dense(transform.transform(x.iloc[keep]))
            output = "probability" if classifier and hasattr(estimator, "predict_proba") else "prediction"
            if classifier and output == "prediction":
                output = "margin"
            explainer = shap.PermutationExplainer(_output_function(estimator, output), masker, seed=seed)
            width = xt.shape[1]
            explained = explainer(xt, max_evals=permutations * (2 * width + 1), silent=True)
            values = np.asarray(explained.values, dtype="float64")
            expected = float(np.mean(explained.base_values))
        result = (values, expected, output)
    values, expected, output = result
    per_input = pd.DataFrame(values, columns=owners).T.groupby(level=0, sort=False).sum().T.astype("float64")
    per_input.index = x.index[positions]
    log.info(
        "explained %d of %d row(s) with the %s explainer (%s space, %d transformed -> %d input columns)",
        len(positions),
        len(x),
        kind,
        output,
        values.shape[1],
        per_input.shape[1],
    )
    return Explanation(
        values=per_input,
        positions=positions,
        expected_value=expected,
        explainer=kind,
        output=output,
        available=len(x),
        seed=seed,
    )


def reference_profile(
    pipeline: Any, x: pd.DataFrame, *, task: str, seed: int, max_rows: int = MAX_ROWS
) -> dict[str, Any]:
    """The global profile of a model version (``explain/shap_importance.json``), on ``x`` (the
    holdout's feature rows): :meth:`Explanation.to_dict` on a seeded sample of at most
    ``max_rows`` rows, plus ``background`` (``columns``, ``data``: the rows the linear and
    permutation explainers masked with, so monitoring explains batches against the same ones;
    absent for the tree explainer, which needs none) and ``max_rows``.
    """
    background = x.iloc[_sample(len(x), BACKGROUND_ROWS, seed)]
    explanation = explain_pipeline(
        pipeline, x, task=task, background=background, max_rows=max_rows, seed=seed
    )
    doc = {**explanation.to_dict(), "max_rows": max_rows}
    if explanation.explainer != "tree":
        doc["background"] = {
            "columns": [str(c) for c in background.columns],
            "data": background.astype(object).where(background.notna(), None).to_numpy().tolist(),
        }
    return doc


def stored_background(profile: dict[str, Any]) -> pd.DataFrame | None:
    """The background rows of a stored profile (None when it has none: a tree explainer)."""
    stored = profile.get("background")
    if not stored:
        return None
    return pd.DataFrame(stored["data"], columns=stored["columns"])


def top_contributions(explanation: Explanation, k: int) -> pd.DataFrame:
    """The ``k`` largest |contributions| per row: columns ``top<i>_feature`` (text) and
    ``top<i>_contribution`` (signed, the output space's units), i = 1..k, rows as explained."""
    values = explanation.values
    k = max(0, min(int(k), values.shape[1]))
    matrix = values.to_numpy()
    order = np.argsort(-np.abs(matrix), axis=1, kind="stable")[:, :k]
    names = np.asarray(values.columns, dtype=object)
    out: dict[str, Any] = {}
    for i in range(k):
        out[f"top{i + 1}_feature"] = names[order[:, i]]
        out[f"top{i + 1}_contribution"] = np.take_along_axis(matrix, order[:, i : i + 1], axis=1)[:, 0]
    return pd.DataFrame(out, index=values.index)


def importance_figure(profile: dict[str, Any], title: str) -> Any:
    """A horizontal bar chart of a profile's ``mean_abs_shap`` (a matplotlib ``Figure``, no pyplot)."""
    from matplotlib.figure import Figure

    means = profile["mean_abs_shap"]
    names = list(means)[::-1]
    fig = Figure(figsize=(6.4, 0.35 * len(names) + 1.2), layout="tight")
    ax = fig.add_subplot()
    ax.barh(names, [means[n] for n in names], color="#3b7dd8")
    ax.set_xlabel(f"mean |SHAP| ({profile['output'].replace('_', '-')})")
    ax.set_title(title, fontsize=10)
    return fig


def figure_png(fig: Any) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


__all__ = [
    "BACKGROUND_ROWS",
    "Explanation",
    "ExplanationError",
    "FALLBACK_BACKGROUND_ROWS",
    "FALLBACK_MAX_ROWS",
    "MAX_ROWS",
    "OUTPUT_SPACES",
    "explain_pipeline",
    "explainer_kind",
    "importance_figure",
    "input_columns",
    "model_output",
    "reference_profile",
    "stored_background",
    "split_pipeline",
    "top_contributions",
]
