"""Print the results table of results.json as Markdown (for README.md).

.venv/bin/python benchmarks/scoring/table.py [results.json results_5m_20m.json ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    names = sys.argv[1:] or [str(HERE / "results.json")]
    print(
        "| rows | floor: read + `predict_proba` | mlops-ops: streamed scoring, file written | time ratio "
        "| floor peak RSS | mlops-ops peak RSS | mlops-ops above the loaded model | snapshot bytes check | runs |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    rows = [row for name in names for row in json.loads(Path(name).read_text())["summary"]]
    for row in rows:
        floor, mine, check = row["floor"], row["mlops"], row["verify"]
        runs = f"{floor['runs'] if floor else 0} / {mine['runs']}"
        floor_s = f"{floor['wall_s']:.1f} s" if floor else "not run"
        ratio = f"{row['time_ratio']:.2f}x" if row["time_ratio"] else "-"
        floor_mem = f"{floor['peak_rss_mib'] / 1024:.2f} GiB" if floor else "-"
        print(
            f"| {row['size'].upper()} | {floor_s} | {mine['wall_s']:.1f} s | {ratio} | {floor_mem} "
            f"| {mine['peak_rss_mib'] / 1024:.2f} GiB | {row['mlops_above_load_mib'] / 1024:.2f} GiB "
            f"| {check['wall_s']:.1f} s | {runs} |"
        )


if __name__ == "__main__":
    main()
