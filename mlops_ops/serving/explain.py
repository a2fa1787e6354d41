"""Explanations in serving answers: one SHAP explainer per loaded model version, built on the first
request that asks (``params.explain`` or ``?explain=k``), cached with the version and dropped with it.

The contributions are those of :mod:`mlops_ops.core.explain` (per input column, additive: per row
they sum to the model's output in ``output`` space minus ``expected_value``); only the tree
explainer's shap object is kept between requests, the linear and permutation explainers are rebuilt
on the version's stored background (their cost is the model calls, not the build).
"""

from __future__ import annotations

import logging
import math
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
        self.transform, preprocess, estimator = split_pipeline(pipeline)
        self.owners = input_columns(preprocess)
        classifier = task == "classification" or hasattr(estimator, "classes_")
        if classifier and len(getattr(estimator, "classes_", [0, 1])) != 2:
            raise ExplanationError("only binary classifiers are explained (the positive class)")
        self.tree: Any = None
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
        if self.tree is None:
            if self._loaded is None:
                self._loaded = (self._background() if self._background is not None else None,)
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
        values = np.asarray(self.tree.shap_values(xt, check_additivity=False), dtype="float64")
        if values.ndim == 3:  # one slice per class: the positive class
            values = values[..., -1]
        frame = pd.DataFrame(values, columns=self.owners)
        per_input = frame.T.groupby(level=0, sort=False).sum().T.astype("float64")
        per_input.index = coerced.index
        return Explanation(
            values=per_input,
            positions=np.arange(len(coerced)),
            expected_value=self.expected_value,
            explainer="tree",
            output=self.output,
            available=len(coerced),
            seed=0,
        )


def row_contributions(explanation: Explanation, coerced: pd.DataFrame, k: int) -> list[list[dict[str, Any]]]:
    """Per row, its ``k`` largest |contributions| (:func:`~mlops_ops.core.explain.top_contributions`,
    largest first) as ``{"feature", "value" (the row's input value, as the model saw it),
    "contribution"}``."""
    top = top_contributions(explanation, k)
    out: list[list[dict[str, Any]]] = []
    for j in range(len(top)):
        row = []
        for i in range(1, k + 1):
            feature = str(top.iloc[j][f"top{i}_feature"])
            row.append(
                {
                    "feature": feature,
                    "value": _plain(coerced.iloc[j][feature]),
                    "contribution": float(top.iloc[j][f"top{i}_contribution"]),
                }
            )
        out.append(row)
    return out


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
