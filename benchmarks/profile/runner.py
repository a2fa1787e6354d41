"""One measured profile run in its own process; writes a JSON result.

    runner.py --mode sort   --file 5m --out r.json   # the floor: read each column, np.sort it
    runner.py --mode mlops  --file 5m --out r.json   # profile_parquet: a column at a time, coerced
    runner.py --mode memory --file 5m --out r.json   # before: pandas.read_parquet + build_reference_profile

Wall time is measured from after the imports to the end (the profile built, or every column sorted).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["sort", "mlops", "memory"], required=True)
    p.add_argument("--file", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    path = DATA / f"profile_{args.file}.parquet"

    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq

    from mlops_ops.core.data import FeatureSet
    from mlops_ops.core.drift import build_reference_profile
    from mlops_ops.core.drift.profile_file import profile_parquet
    from mlops_ops.core.schema import Schema

    file = pq.ParquetFile(path)
    columns = list(file.schema_arrow.names)
    schema = Schema.from_feature_set(FeatureSet(tuple(columns), ()))
    doc: dict = {
        "mode": args.mode,
        "file": args.file,
        "rows": file.metadata.num_rows,
        "columns": len(columns),
    }
    t0 = time.perf_counter()
    if args.mode == "sort":
        checksum = 0.0
        for name in columns:
            values = file.read(columns=[name]).column(0).to_numpy()
            ordered = np.sort(values)
            checksum += float(ordered[len(ordered) // 2])
            del values, ordered
        doc["checksum"] = checksum
    elif args.mode == "mlops":
        profile = profile_parquet(file, schema)
        doc["profile_kib"] = len(json.dumps(profile.to_dict())) / 1024
    else:
        frame = pd.read_parquet(path)
        profile = build_reference_profile(schema.coerce(frame), numeric=columns, schema=schema)
        doc["profile_kib"] = len(json.dumps(profile.to_dict())) / 1024
    doc["wall_s"] = time.perf_counter() - t0
    doc["peak_rss_self_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(args.out).write_text(json.dumps(doc, indent=2))


if __name__ == "__main__":
    sys.exit(main())
