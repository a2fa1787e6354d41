"""Cost of explanations in the online service, per request size: ScoringService.score in process
(no HTTP; the same code path ``POST /invocations`` runs in a scoring thread), on the churn
example's model as the spec trains it (HistGradientBoostingClassifier, 150 iterations, 15 leaves)
and on a logistic regression, with and without ``explain``.

    OMP_NUM_THREADS=1 flock /tmp/mlops-heavy.lock .venv/bin/python benchmarks/serving_explain/run.py

Prints and writes ``results.json`` beside this file: the median milliseconds per request (of
``--repeats`` after one warm-up that builds the explainer) and per explained row, plus the
one-off cost of building the version's explainer.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # as `mlops-ops serve` sets it


def main() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    from mlops_ops.core.schema_inference import infer_schema
    from mlops_ops.core.training import build_pipeline
    from mlops_ops.example.churn import generate
    from mlops_ops.serving.metrics import ServingMetrics
    from mlops_ops.serving.models import Models, ServedModel, known_categories
    from mlops_ops.serving.protocol import parse_body
    from mlops_ops.serving.routing import Routing, Strategy
    from mlops_ops.serving.service import ScoringService

    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    frame = generate(1200, seed=0)
    frame["data_usage_gb"] = frame["data_usage_gb"].fillna(12.5)
    numeric = ["tenure_months", "monthly_charges", "support_calls", "data_usage_gb"]
    categorical = ["contract", "region", "payment_method"]
    schema = infer_schema(frame, "churned", numeric=numeric, categorical=categorical)
    estimators = {
        "hist_gradient_boosting": lambda: HistGradientBoostingClassifier(
            max_iter=150, learning_rate=0.08, max_leaf_nodes=15, random_state=0
        ),
        "logistic_regression": lambda: LogisticRegression(max_iter=500),
    }
    requests = generate(100, seed=3)[numeric + categorical]
    requests["data_usage_gb"] = requests["data_usage_gb"].fillna(12.5)
    requests["region"] = requests["region"].fillna("north")
    rows = json.loads(requests.to_json(orient="records"))
    results = []
    for name, make in estimators.items():
        pipeline = build_pipeline(make(), schema.feature_set, schema).fit(frame, frame["churned"])
        background = frame[schema.features].iloc[:100]
        model = ServedModel(
            name="churn",
            version="1",
            model=pipeline,
            schema=schema,
            task="classification",
            categories=known_categories(pipeline),
            background=lambda b=background: b,
        )
        t0 = time.perf_counter()
        model.explainer()
        build_ms = (time.perf_counter() - t0) * 1e3
        service = ScoringService(Routing(Strategy.DIRECT, 0.0, salt="churn"), ServingMetrics("churn"), None)
        for n in (1, 10, 100):
            body = json.dumps({"dataframe_records": rows[:n]}).encode()
            for explain in (None, 3):
                query = None if explain is None else str(explain)
                times = []
                for i in range(args.repeats + 1):
                    parsed = parse_body(body, max_rows=10_000, explain=query)
                    t0 = time.perf_counter()
                    service.score(parsed, Models(champion=model))
                    if i:
                        times.append((time.perf_counter() - t0) * 1e3)
                results.append(
                    {
                        "model": name,
                        "rows": n,
                        "explain": explain,
                        "median_ms": round(statistics.median(times), 2),
                        "explainer_build_ms": round(build_ms, 1),
                    }
                )
                print(json.dumps(results[-1]))
    for r in results:
        if r["explain"] is not None:
            base = next(
                b["median_ms"]
                for b in results
                if b["model"] == r["model"] and b["rows"] == r["rows"] and b["explain"] is None
            )
            r["explain_ms_per_row"] = round((r["median_ms"] - base) / r["rows"], 3)
    (Path(__file__).parent / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    for r in results:
        print(r)


if __name__ == "__main__":
    main()
