"""What verifying a snapshot costs per GB: the bytes hash, and decode + content hash.

    flock /tmp/mlops-heavy.lock .venv/bin/python benchmarks/ingest/verify.py --rows 5000000

Ingests ``data/rows_<N>.parquet`` once (the real operator) into a temporary storage root, then
times, three times each (medians): ``verify_snapshot_file`` (manifest + SHA-256 of the data
file's bytes, streamed in 8 MiB chunks: what streaming readers pay), the decode of the file into
an Arrow table, and the content hash of that table (what ``read_snapshot`` adds on top of the
decode every reader pays anyway). Results go to ``verify.json`` and are printed per GB of file.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5_000_000)
    args = parser.parse_args()
    src = HERE / "data" / f"rows_{args.rows}.parquet"
    with tempfile.TemporaryDirectory(prefix="ingest-verify-") as tmp:
        os.environ["MLOPS_HOME"] = tmp
        os.environ["MLOPS_STORAGE"] = str(Path(tmp) / "storage")
        from mlops_ops.core import canonical
        from mlops_ops.core import snapshot as snap
        from mlops_ops.hooks.storage import verify_snapshot_file
        from mlops_ops.operators.ingest import IngestDatasetOperator

        class _TI(SimpleNamespace):
            def xcom_push(self, key, value):  # noqa: ANN001
                pass

        op = IngestDatasetOperator(task_id="ingest", pipeline="bench", source_uri=str(src))
        result = op.execute(
            {
                "ti": _TI(dag_id="b", run_id="r", task_id="ingest"),
                "outlet_events": defaultdict(SimpleNamespace),
                "logical_date": None,
            }
        )
        data_file = Path(result["uri"].removeprefix("file://")) / snap.DATA_FILE
        size = data_file.stat().st_size
        times: dict[str, list[float]] = {"bytes_hash": [], "decode": [], "content_hash": []}
        for _ in range(3):
            t0 = time.perf_counter()
            verify_snapshot_file(result["uri"])
            times["bytes_hash"].append(time.perf_counter() - t0)
            raw = data_file.read_bytes()
            t0 = time.perf_counter()
            table = snap.decode_table(raw, uri=result["uri"])
            times["decode"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            assert canonical.table_sha256(table) == result["sha256"]
            times["content_hash"].append(time.perf_counter() - t0)
            del raw, table
        gb = size / 1e9
        out = {
            "rows": args.rows,
            "file_bytes": size,
            **{f"{k}_s": statistics.median(v) for k, v in times.items()},
            **{f"{k}_s_per_gb": statistics.median(v) / gb for k, v in times.items()},
        }
        (HERE / "verify.json").write_text(json.dumps(out, indent=2) + "\n")
        json.dump(out, sys.stdout, indent=2)


if __name__ == "__main__":
    main()
