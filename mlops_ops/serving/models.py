"""The served model versions: loaded from the MLflow registry by alias, followed as aliases move.

A :class:`ServedModel` is one registered version loaded as an MLflow pyfunc, with what the service
needs to check a request against it (its frozen schema, the categories its encoder knows, the
columns that were never missing at training) and to answer (its task and classes).

:class:`ModelSet` polls the registry every ``poll_seconds``; a new version behind ``champion`` or
``challenger`` is loaded aside, then swapped in with one assignment. A request takes the current
:class:`Models` once, so a swap never changes the model under a request in flight.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlops_ops import settings
from mlops_ops.core.model_uri import model_version_uri
from mlops_ops.core.schema import CATEGORICAL, Schema, SchemaError
from mlops_ops.core.scoring_stream import predict_batch

log = logging.getLogger(__name__)

CHALLENGER_ALIAS = "challenger"
_MISSING_CATEGORY = "__missing__"  # core.training.MISSING: the label the imputer gives a gap


@dataclass(frozen=True)
class ServedModel:
    """One loaded model version.

    :param version: registry version number, as text.
    :param model: the fitted estimator (the scikit-learn pipeline behind the pyfunc), or the pyfunc
        itself for another flavor.
    :param schema: the version's frozen schema (its ``schema.json``).
    :param task: ``classification`` or ``regression``.
    :param categories: known labels of each categorical feature (from the fitted encoder).
    :param never_missing: features that had no missing value in the training snapshot (from the
        version's reference profile): a gap there is refused.
    :param background: returns the version's stored SHAP background rows (None: none stored);
        called once, by the first request asking for explanations (:meth:`explainer`).
    """

    name: str
    version: str
    model: Any
    schema: Schema
    task: str
    run_id: str | None = None
    categories: dict[str, frozenset[str]] = field(default_factory=dict)
    never_missing: frozenset[str] = frozenset()
    background: Callable[[], pd.DataFrame | None] | None = field(default=None, compare=False, repr=False)
    # the explainer (or why there is none), built on the first request that asks; dropped with
    # the version when the registry poll swaps it out
    _explainer: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    _explainer_lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"

    def explainer(self) -> Any:
        """This version's :class:`~mlops_ops.serving.explain.VersionExplainer`, built once (the
        first call; concurrent first calls wait for that build).

        :raises ExplanationError: shap cannot explain this version (the message names it); the
            refusal is cached too, so it is not retried per request.
        """
        from mlops_ops.core.explain import ExplanationError

        with self._explainer_lock:
            if "explainer" not in self._explainer and "error" not in self._explainer:
                from mlops_ops.serving.explain import VersionExplainer

                try:
                    self._explainer["explainer"] = VersionExplainer(self.model, self.task, self.background)
                    log.info("%s: %s explainer built", self.label, self._explainer["explainer"].kind)
                except Exception as err:  # shap or the pipeline's shape: a refusal, never a crash
                    log.warning("%s cannot be explained: %s: %s", self.label, type(err).__name__, err)
                    self._explainer["error"] = f"{type(err).__name__}: {err}"
            if "error" in self._explainer:
                raise ExplanationError(f"{self.label} cannot be explained ({self._explainer['error']})")
            return self._explainer["explainer"]

    def check(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The model's input: ``frame`` coerced to the schema, with the service's stricter checks.

        :raises SchemaError: a column is missing, a value has the wrong type, a category is
            unknown, or a value is missing where training never had a gap; the message names the
            column, the value and what was expected.
        """
        coerced = self.schema.coerce(frame, where="request")
        types = {c.name: c.type for c in self.schema.columns}
        for name in self.schema.features:
            column = coerced[name]
            gaps = column.isna()
            if name in self.never_missing and gaps.any():
                rows = np.flatnonzero(gaps.to_numpy())
                raise SchemaError(
                    f"request: column {name!r} is missing (null or NaN) in {len(rows)} row(s), e.g. row "
                    f"{int(rows[0])}; {self.label} never saw it missing at training, so its answer would "
                    f"be a guess: send a {types[name]} value"
                )
            known = self.categories.get(name)
            if known is not None and types[name] == CATEGORICAL:
                values = column[~gaps]
                unknown = sorted(set(values.unique()) - known)
                if unknown:
                    shown = sorted(known - {_MISSING_CATEGORY})
                    raise SchemaError(
                        f"request: column {name!r} holds unknown categor{'y' if len(unknown) == 1 else 'ies'} "
                        f"{unknown[:5]}; {self.label} knows {shown[:20]}"
                        f"{' ...' if len(shown) > 20 else ''}"
                    )
        return coerced

    def predict(self, coerced: pd.DataFrame) -> dict[str, Any]:
        """Scores of checked rows (:meth:`check`): ``pred``, and ``proba``/``classes``/``proba_all``
        for a classifier with probabilities (:func:`mlops_ops.core.scoring_stream.predict_batch`)."""
        if hasattr(self.model, "steps") or hasattr(self.model, "predict_proba"):
            return predict_batch(self.model, coerced, self.task, coerced=self.schema)
        return {"pred": np.asarray(self.model.predict(coerced))}


@dataclass(frozen=True)
class Models:
    """What serves right now: the champion and, while the alias exists, the challenger."""

    champion: ServedModel | None = None
    challenger: ServedModel | None = None


def load_version(hook: Any, name: str, version: str) -> ServedModel:
    """Load one registered version (pyfunc) with its schema, task, categories and gaps.

    :param hook: an :class:`~mlops_ops.hooks.mlflow.MlflowHook`.
    :raises: the registry's and the artifact store's errors, unchanged.
    """
    from mlops_ops.artifacts import PROFILE_ARTIFACT, SCHEMA_ARTIFACT, SHAP_IMPORTANCE_ARTIFACT

    mv = hook.model_version(name, version)
    run_id = mv.run_id
    pyfunc = hook.load_pyfunc_model(model_version_uri(name, version))
    model = _raw_model(pyfunc)
    training = hook.load_training_spec(run_id) if run_id else None
    schema_doc = hook.load_dict(run_id, SCHEMA_ARTIFACT) if run_id else None
    if schema_doc is not None:
        schema = Schema.from_dict(schema_doc)
    elif training is not None:
        from mlops_ops.core.data import FeatureSet

        schema = Schema.from_feature_set(FeatureSet(training.numeric, training.categorical), training.target)
    else:
        raise ValueError(f"{name} v{version} (run {run_id}) has neither schema.json nor training_spec.json")
    task = training.task if training is not None else "classification"
    profile = hook.load_dict(run_id, PROFILE_ARTIFACT) if run_id else None

    def background() -> pd.DataFrame | None:
        from mlops_ops.core.explain import stored_background

        shap_profile = hook.load_dict(run_id, SHAP_IMPORTANCE_ARTIFACT) if run_id else None
        return stored_background(shap_profile) if shap_profile else None

    return ServedModel(
        name=name,
        version=str(version),
        model=model,
        schema=schema,
        task=task,
        run_id=run_id,
        categories=known_categories(model),
        never_missing=_never_missing(profile, schema),
        background=background,
    )


def _raw_model(pyfunc: Any) -> Any:
    """The scikit-learn model behind a pyfunc (one preprocessing pass for labels and probabilities);
    the pyfunc itself for other flavors."""
    try:
        raw = pyfunc.get_raw_model()
    except Exception:  # not every flavor exposes its model
        return pyfunc
    return raw if hasattr(raw, "predict") else pyfunc


def known_categories(model: Any) -> dict[str, frozenset[str]]:
    """Labels each categorical feature's fitted one-hot encoder knows, by column; {} if none found."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    out: dict[str, frozenset[str]] = {}

    def visit(step: Any, columns: list[str] | None) -> None:
        if isinstance(step, Pipeline):
            for _, sub in step.steps:
                visit(sub, columns)
        elif isinstance(step, ColumnTransformer):
            for _, sub, cols in getattr(step, "transformers_", []):
                if isinstance(cols, list | tuple) and all(isinstance(c, str) for c in cols):
                    visit(sub, list(cols))
        elif isinstance(step, OneHotEncoder) and columns and hasattr(step, "categories_"):
            for col, cats in zip(columns, step.categories_, strict=False):
                out[col] = frozenset(str(c) for c in cats)

    visit(model, None)
    return out


def _never_missing(profile: dict[str, Any] | None, schema: Schema) -> frozenset[str]:
    if not profile:
        return frozenset()
    names = []
    for kind in ("numeric", "categorical"):
        for col, doc in (profile.get(kind) or {}).items():
            if isinstance(doc, dict) and doc.get("missing") == 0 and doc.get("n", 0) > 0:
                names.append(col)
    return frozenset(n for n in names if n in schema.features)


class ModelSet:
    """The champion and challenger of one pipeline, followed in the registry.

    :param hook: an :class:`~mlops_ops.hooks.mlflow.MlflowHook`.
    :param name: the registered model (the pipeline's name).
    :param poll_seconds: how often the aliases are read.
    :param on_change: called with the new :class:`Models` after each swap (metrics).
    """

    def __init__(
        self,
        hook: Any,
        name: str,
        *,
        poll_seconds: float = 5.0,
        on_change: Callable[[Models], None] | None = None,
    ) -> None:
        self.hook = hook
        self.name = name
        self.poll_seconds = poll_seconds
        self.on_change = on_change
        self.current = Models()
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cache: dict[str, ServedModel] = {}

    def refresh(self) -> Models:
        """Read both aliases; load any version not yet loaded, then swap. Returns what serves now.

        Errors (the registry down, a version that cannot load) propagate, and what served before
        keeps serving.
        """
        champion_v = self._alias(settings.CHAMPION_ALIAS)
        challenger_v = self._alias(CHALLENGER_ALIAS)
        if challenger_v == champion_v:
            challenger_v = None  # a promoted challenger whose alias is not yet deleted
        wanted = {v for v in (champion_v, challenger_v) if v is not None}
        for version in sorted(wanted - set(self._cache)):
            log.info("loading %s v%s", self.name, version)
            self._cache[version] = load_version(self.hook, self.name, version)
        new = Models(
            champion=self._cache.get(champion_v) if champion_v else None,
            challenger=self._cache.get(challenger_v) if challenger_v else None,
        )
        old = self.current
        if _versions(new) != _versions(old):
            self.current = new  # the swap: requests in flight keep the Models they took
            log.info("serving %s: champion %s, challenger %s", self.name, *_versions(new))
            if self.on_change is not None:
                self.on_change(new)
        for version in set(self._cache) - wanted:
            del self._cache[version]
        return new

    def _alias(self, alias: str) -> str | None:
        mv = self.hook.get_alias_version(self.name, alias)
        return str(mv.version) if mv is not None else None

    def start(self) -> ModelSet:
        """Poll the registry in a background thread (after a first :meth:`refresh` by the caller)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="registry-poll", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.poll_once()

    def poll_once(self) -> None:
        try:
            self.refresh()
            self.last_error = None
        except Exception as err:  # keep serving what was loaded; say why in /health and the log
            self.last_error = f"{type(err).__name__}: {err}"
            log.warning("could not refresh the models of %s: %s", self.name, self.last_error)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None


def _versions(models: Models) -> tuple[str | None, str | None]:
    return (
        models.champion.version if models.champion else None,
        models.challenger.version if models.challenger else None,
    )


def json_value(value: Any) -> Any:
    """A numpy scalar as a plain JSON value (non-finite floats as None)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


__all__ = ["CHALLENGER_ALIAS", "ModelSet", "Models", "ServedModel", "load_version"]
