"""Names of the MLflow run artifacts that tasks write and later tasks read back.

One place for the names, so that the operator writing an artifact and the operators reading it
never import each other (docs/architecture.md, "MLflow lineage"). Plain strings: importing this
module costs nothing at DAG parse time.
"""

from __future__ import annotations

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
#: permutation importance of the challenger, on its run, by evaluate
IMPORTANCE_ARTIFACT = "explain/permutation_importance.json"

__all__ = [
    "DECISION_ARTIFACT",
    "GATE_DECISIONS",
    "SCHEMA_ARTIFACT",
    "TRAINING_SPEC_KEYS",
    "TRAINING_SPLIT_KEYS",
    "IMPORTANCE_ARTIFACT",
    "PREDICTION_PROFILE_ARTIFACT",
    "PROFILE_ARTIFACT",
    "TRAINING_SPEC_ARTIFACT",
]
