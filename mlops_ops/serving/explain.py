"""Explanations in serving answers: one SHAP explainer per loaded model version, built on the first
request that asks (``params.explain`` or ``?explain=k``), cached with the version and dropped with it.

The contributions are those of :mod:`mlops_ops.core.explain` (per input column, additive: per row
they sum to the model's output in ``output`` space minus ``expected_value``). The tree and linear
explainers' shap objects are kept between requests; the permutation fallback is rebuilt per request
on the version's stored background (its cost is its hundreds of model calls per row, not the build).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from mlops_ops.core.explain import (
    Explanation,
    ExplanationError,
    explain_pipeline,
    input_columns,
    split_pipeline,
    top_contributions,
)

log = logging.getLogger(__name__)


class VersionExplainer:
    """The explainer of one model version.

    :param pipeline: the version's fitted training Pipeline.
    :param task: ``classification`` (binary: the positive class) or ``regression``.
    :param background: returns the rows the linear and permutation explainers mask with (the
        version's stored ``explain/shap_importance.json`` background; None: each request is its own
        background); called on their first request only (the tree explainer needs none), and its
        errors (the registry down) propagate, to be tried again by the next request.
    :raises ExplanationError: shap cannot explain the pipeline (not a training Pipeline, a
        classifier with more than two classes, columns that map to no input).
    """

    def __init__(
        self, pipeline: Any, task: str, background: Callable[[], pd.DataFrame | None] | None = None
    ) -> None:
        import shap
        from shap.utils._exceptions import InvalidModelError

        self.pipeline, self.task, self._background = pipeline, task, background
        self._loaded: tuple[pd.DataFrame | None] | None = None
        self._lock = threading.Lock()
        self.transform, preprocess, estimator = split_pipeline(pipeline)
        self.owners = input_columns(preprocess)
        classifier = task == "classification" or hasattr(estimator, "classes_")
        if classifier and len(getattr(estimator, "classes_", [0, 1])) != 2:
            raise ExplanationError("only binary classifiers are explained (the positive class)")
        self.estimator = estimator
        self.tree: Any = None
        self.linear: Any = None  # built on the first request (it needs the stored background)
        coef = getattr(estimator, "coef_", None)
        linear = (
            coef is not None and hasattr(estimator, "intercept_") and np.asarray(coef).squeeze().ndim <= 1
        )
        self.kind = "linear" if linear else "permutation"  # as core.explain.explainer_kind
        try:
            tree = shap.TreeExplainer(estimator)
        except InvalidModelError:
            tree = None
        tree_output = str(getattr(getattr(tree, "model", None), "tree_output", ""))
        if tree is not None and (not classifier or tree_output in ("log_odds", "probability")):
            self.tree, self.kind = tree, "tree"
            self.output = tree_output if classifier else "prediction"
            self.expected_value = float(np.ravel(np.asarray(tree.expected_value, dtype="float64"))[-1])

    def explain(self, coerced: pd.DataFrame) -> Explanation:
        """SHAP values of every row of ``coerced`` (the checked request rows), per input column."""
        if self.kind != "tree" and self._loaded is None:
            with self._lock:  # once: the stored background, and the linear explainer on it
                if self._loaded is None:
                    background = self._background() if self._background is not None else None
                    if self.kind == "linear":
                        self._build_linear(background)
                    self._loaded = (background,)
        if self.tree is None and self.linear is None:  # permutation, or linear without a background
            assert self._loaded is not None
            n = len(coerced)
            return explain_pipeline(
                self.pipeline,
                coerced,
                task=self.task,
                background=self._loaded[0],
                max_rows=n,
                fallback_max_rows=n,
            )
        xt = self.transform.transform(coerced)
        xt = np.asarray(xt.toarray() if hasattr(xt, "toarray") else xt, dtype="float64")
        if self.tree is not None:
            values = np.asarray(self.tree.shap_values(xt, check_additivity=False), dtype="float64")
        else:
            values = np.asarray(self.linear.shap_values(xt), dtype="float64")
        if values.ndim == 3:  # one slice per class: the positive class
            values = values[..., -1]
        frame = pd.DataFrame(values, columns=self.owners)
        per_input = frame.T.groupby(level=0, sort=False).sum().T.astype("float64")
        per_input.index = coerced.index
        return Explanation(
            values=per_input,
            positions=np.arange(len(coerced)),
            expected_value=self.expected_value,
            explainer=self.kind,
            output=self.output,
            available=len(coerced),
            seed=0,
        )

    def _build_linear(self, background: pd.DataFrame | None) -> None:
        """The linear explainer on the version's stored background, as
        :func:`~mlops_ops.core.explain.explain_pipeline` builds it (kept for later requests);
        without a stored background each request is explained on its own rows instead."""
        import shap

        from mlops_ops.core.explain import BACKGROUND_ROWS

        if background is None or not len(background):
            return
        background = background.iloc[:BACKGROUND_ROWS]
        bg = self.transform.transform(background)
        bg = np.asarray(bg.toarray() if hasattr(bg, "toarray") else bg, dtype="float64")
        masker = shap.maskers.Independent(bg, max_samples=len(bg))
        self.linear = shap.LinearExplainer(self.estimator, masker)
        self.expected_value = float(np.ravel(self.linear.expected_value)[-1])
        classifier = self.task == "classification" or hasattr(self.estimator, "classes_")
        self.output = (
            "prediction"
            if not classifier
            else "log_odds"
            if hasattr(self.estimator, "predict_proba")
            else "margin"
        )


def row_contributions(explanation: Explanation, coerced: pd.DataFrame, k: int) -> list[list[dict[str, Any]]]:
    """Per row, its ``k`` largest |contributions| (:func:`~mlops_ops.core.explain.top_contributions`,
    largest first) as ``{"feature", "value" (the row's input value, as the model saw it),
    "contribution"}``."""
    top = top_contributions(explanation, k)
    features = [top[f"top{i}_feature"].astype(str).tolist() for i in range(1, k + 1)]
    values = [top[f"top{i}_contribution"].to_numpy(dtype="float64").tolist() for i in range(1, k + 1)]
    columns = {c: coerced[c].tolist() for c in set().union(*map(set, features))}
    return [
        [
            {
                "feature": features[i][j],
                "value": _plain(columns[features[i][j]][j]),
                "contribution": values[i][j],
            }
            for i in range(k)
        ]
        for j in range(len(top))
    ]


def _plain(value: Any) -> Any:
    """A cell as a JSON value (missing and non-finite: None)."""
    if value is None or (not isinstance(value, str) and bool(pd.isna(value))):
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if isinstance(value, bool | int | float | str) else str(value)


__all__ = ["VersionExplainer", "row_contributions"]
