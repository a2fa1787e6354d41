"""What explanations cost: the SHAP step train adds, and the attribution-drift task's work.

Each case runs in a fresh interpreter (the first ``import shap`` is part of the cost a training
task pays). Prints one JSON line per case and writes ``results.json`` beside this file.

    flock /tmp/mlops-heavy.lock .venv/bin/python benchmarks/explain/run.py
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent

CASE = r"""
import json, sys, time
t0 = time.perf_counter()
from mlops_ops.core.drift.attribution import attribution_drift
from mlops_ops.core.features import FeatureSet
from mlops_ops.core.training import prepare_features, split, train_model
from mlops_ops.example import churn
estimator, params, rows = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
frame = churn.generate(rows, seed=0)
features = FeatureSet(numeric=churn.NUMERIC, categorical=churn.CATEGORICAL)
t = time.perf_counter()
result = train_model(frame, target="churned", features=features, estimator=estimator, params=params)
fit = time.perf_counter() - t
from mlops_ops.core.explain import importance_figure, reference_profile, explain_pipeline, figure_png
t = time.perf_counter()  # the first shap import (about 0.5 s) is inside explain_s, as in a training task
_, holdout = split(frame, 0.25, 42)
x = prepare_features(holdout, features)
profile = reference_profile(result.model, x, task=result.task, seed=42)
explained = time.perf_counter() - t
t = time.perf_counter()
figure_png(importance_figure(profile, "bench"))
plotted = time.perf_counter() - t
batch = prepare_features(churn.generate(5000, seed=1), features)
t = time.perf_counter()
values = explain_pipeline(result.model, batch, task=result.task, seed=0).values
attribution_drift(profile["mean_abs_shap"], values)
monitored = time.perf_counter() - t
print(json.dumps({
    "estimator": estimator.rsplit(".", 1)[-1], "rows": rows, "explainer": profile["explainer"],
    "explained_rows": profile["rows"], "train_model_s": round(fit, 2),
    "explain_s": round(explained, 2), "plot_s": round(plotted, 2),
    "train_overhead_s": round(explained + plotted, 2),
    "monitoring_explain_and_bootstrap_s": round(monitored, 2),
}))
"""

CASES = [
    (
        "sklearn.ensemble.HistGradientBoostingClassifier",
        {"max_iter": 150, "learning_rate": 0.08, "max_leaf_nodes": 15},
        4200,
    ),
    (
        "sklearn.ensemble.HistGradientBoostingClassifier",
        {"max_iter": 150, "learning_rate": 0.08, "max_leaf_nodes": 15},
        100_000,
    ),
    ("sklearn.ensemble.RandomForestClassifier", {"n_estimators": 100}, 4200),
    ("sklearn.linear_model.LogisticRegression", {}, 4200),
    ("sklearn.neighbors.KNeighborsClassifier", {}, 4200),
]


def main() -> int:
    results = []
    for estimator, params, rows in CASES:
        out = subprocess.run(
            [sys.executable, "-c", CASE, estimator, json.dumps(params), str(rows)],
            capture_output=True,
            text=True,
            check=True,
        )
        line = out.stdout.strip().splitlines()[-1]
        print(line, flush=True)
        results.append(json.loads(line))
    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
