"""One measured scoring run in its own process; writes a JSON result.

    runner.py --mode floor  --rows 5m --out r.json   # pandas.read_parquet(model columns) + predict_proba
    runner.py --mode mlops  --rows 5m --out r.json   # mlops_ops.core.scoring_stream.score_parquet
    runner.py --mode verify --rows 5m --out r.json   # the snapshot bytes check the operator adds

Wall time is measured from after the imports and the model load to the end (floor: the
probabilities in memory; mlops: the predictions file written and closed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import resource
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["floor", "mlops", "verify"], required=True)
    p.add_argument("--rows", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--batch-rows", type=int, default=None)
    args = p.parse_args()
    path = DATA / f"scoring_{args.rows}.parquet"

    import numpy as np
    import pandas as pd

    from mlops_ops.core.schema import Schema
    from mlops_ops.core.scoring_stream import score_parquet

    with (DATA / "model.pkl").open("rb") as fh:
        saved = pickle.load(fh)
    model, schema = saved["model"], Schema.from_dict(saved["schema"])
    baseline = rss_mib()
    doc: dict = {"mode": args.mode, "rows_key": args.rows, "rss_after_load_mib": baseline}
    t0 = time.perf_counter()
    if args.mode == "floor":
        frame = pd.read_parquet(path, columns=schema.features)  # the model's columns, as mlops-ops reads
        proba = model.predict_proba(frame)
        doc["rows"] = len(frame)
        doc["mean_probability"] = float(np.mean(proba[:, 1]))
    elif args.mode == "mlops":
        with tempfile.TemporaryDirectory(dir=DATA) as tmp:
            out = Path(tmp) / "predictions.parquet"
            with out.open("wb") as sink:
                scored = score_parquet(
                    path,
                    sink,
                    model=model,
                    task="classification",
                    schema=schema,
                    id_columns=["customer_id"],
                    model_version="1",
                    input_sha256="0" * 64,
                    interval_start=None,
                    interval_end=None,
                    batch_rows=args.batch_rows,
                )
            doc["wall_s"] = time.perf_counter() - t0
            doc["rows"] = scored.rows
            doc["mean_probability"] = scored.probability_sum / scored.probability_rows
            doc["output_mib"] = out.stat().st_size / 2**20
    else:
        sha = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(8 << 20), b""):
                sha.update(chunk)
        doc["file_gib"] = path.stat().st_size / 2**30
    doc.setdefault("wall_s", time.perf_counter() - t0)
    doc["peak_rss_self_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    doc["model_pickle_mib"] = (DATA / "model.pkl").stat().st_size / 2**20
    Path(args.out).write_text(json.dumps(doc, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
