"""Names of the MLflow run artifacts that tasks write and later tasks read back.

One place for the names, so that the operator writing an artifact and the operators reading it
never import each other (docs/architecture.md, "MLflow lineage"). Plain strings: importing this
module costs nothing at DAG parse time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlops_ops.errors import StoredDocumentError

#: drift reference profile of the training snapshot (``core.drift.ReferenceProfile``), by train
PROFILE_ARTIFACT = "reference_profile.json"
#: profile of the model's outputs on its training snapshot (prediction drift), by train
PREDICTION_PROFILE_ARTIFACT = "prediction_profile.json"
#: target, features, task, split and snapshot of a training run, by train
TRAINING_SPEC_ARTIFACT = "training_spec.json"
#: keys every reader of ``training_spec.json`` relies on (evaluation also needs the split's)
TRAINING_SPEC_KEYS = ("features", "task")
TRAINING_SPLIT_KEYS = ("target", "features", "task", "holdout_fraction", "seed", "snapshot_uri")
#: values of the ``mlops.gate`` version tag that record a gate decision
GATE_DECISIONS = ("promote", "reject")
#: the frozen typed schema of a model version (``core.schema.Schema``), by train
SCHEMA_ARTIFACT = "schema.json"
#: the gate decision, on the challenger's run, by evaluate
DECISION_ARTIFACT = "gate/decision.json"
#: The gate decision's HTML page, beside its JSON.
DECISION_HTML_ARTIFACT = "gate/decision.html"
#: permutation importance of the challenger, on its run, by evaluate
IMPORTANCE_ARTIFACT = "explain/permutation_importance.json"
#: the holdout's probabilities, labels and metrics: the CBPE reference (``core.estimation``), by train
ESTIMATION_REFERENCE_ARTIFACT = "estimation/reference.json"
#: global mean |SHAP| per input column on a seeded holdout sample, with the explainer, its output
#: space and (linear, permutation) its background rows (``core.explain.reference_profile``): the
#: reference of attribution drift, by train
SHAP_IMPORTANCE_ARTIFACT = "explain/shap_importance.json"
#: its bar chart, by train
SHAP_IMPORTANCE_PLOT_ARTIFACT = "explain/shap_importance.png"


@dataclass(frozen=True)
class TrainingSpec:
    """``training_spec.json``: what a training run learnt from, as train wrote it.

    :param target: target column.
    :param numeric: numeric feature columns, in training order.
    :param categorical: categorical feature columns, in training order.
    :param task: ``classification`` or ``regression``.
    :param holdout_fraction: share of rows held out (None in a document without the split).
    :param seed: seed of the split (None in a document without the split).
    :param snapshot_uri: URI of the training snapshot.
    :param raw: the document as stored (keys beyond these: ``schema``, ``estimator``,
        ``snapshot_sha256``, ``n_train``, ``n_holdout``).
    """

    target: str | None
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    task: str
    holdout_fraction: float | None = None
    seed: int | None = None
    snapshot_uri: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_dict(
        cls, doc: Any, *, required: tuple[str, ...] = TRAINING_SPEC_KEYS, where: str = TRAINING_SPEC_ARTIFACT
    ) -> TrainingSpec:
        """Read a stored document, checking the keys its reader relies on.

        :param required: keys the reader needs (``TRAINING_SPEC_KEYS``; evaluation:
            ``TRAINING_SPLIT_KEYS``).
        :param where: names the document in errors (artifact and run).
        :raises StoredDocumentError: not an object, a ``required`` key missing, or ``features``
            without its ``numeric`` and ``categorical`` lists.
        """
        if not isinstance(doc, dict):
            raise StoredDocumentError(f"{where} is not a JSON object; retrain the model version")
        missing = [k for k in required if k not in doc]
        if missing:
            raise StoredDocumentError(f"{where} has no {missing}; retrain the model version")
        features = doc.get("features") or {}
        if not isinstance(features, dict) or not all(
            isinstance(features.get(k), list) for k in ("numeric", "categorical")
        ):
            raise StoredDocumentError(
                f"{where}: 'features' must hold the lists 'numeric' and 'categorical', got {features!r}; "
                "retrain the model version"
            )
        split = all(k in doc for k in ("holdout_fraction", "seed"))
        return cls(
            target=None if doc.get("target") is None else str(doc["target"]),
            numeric=tuple(str(c) for c in features["numeric"]),
            categorical=tuple(str(c) for c in features["categorical"]),
            task=str(doc["task"]) if "task" in doc else "",
            holdout_fraction=float(doc["holdout_fraction"]) if split else None,
            seed=int(doc["seed"]) if split else None,
            snapshot_uri=None if doc.get("snapshot_uri") is None else str(doc["snapshot_uri"]),
            raw=dict(doc),
        )

    def to_dict(self) -> dict[str, Any]:
        """The stored document: this object's fields over ``raw``, in train's key order."""
        doc = dict(self.raw)
        doc.update(
            target=self.target,
            features={"numeric": list(self.numeric), "categorical": list(self.categorical)},
            task=self.task,
        )
        for key in ("holdout_fraction", "seed", "snapshot_uri"):
            if getattr(self, key) is not None:
                doc[key] = getattr(self, key)
        ordered = {k: doc.pop(k) for k in _TRAINING_SPEC_ORDER if k in doc}
        return {**ordered, **doc}


_TRAINING_SPEC_ORDER = (
    "target",
    "features",
    "schema",
    "task",
    "holdout_fraction",
    "seed",
    "estimator",
    "snapshot_uri",
    "snapshot_sha256",
    "n_train",
    "n_holdout",
)


__all__ = [
    "DECISION_ARTIFACT",
    "ESTIMATION_REFERENCE_ARTIFACT",
    "TrainingSpec",
    "GATE_DECISIONS",
    "SCHEMA_ARTIFACT",
    "TRAINING_SPEC_KEYS",
    "TRAINING_SPLIT_KEYS",
    "IMPORTANCE_ARTIFACT",
    "SHAP_IMPORTANCE_ARTIFACT",
    "SHAP_IMPORTANCE_PLOT_ARTIFACT",
    "PREDICTION_PROFILE_ARTIFACT",
    "PROFILE_ARTIFACT",
    "TRAINING_SPEC_ARTIFACT",
]
