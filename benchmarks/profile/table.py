"""Print the results table of results*.json as Markdown (for README.md).

.venv/bin/python benchmarks/profile/table.py results.json results_10m_x100.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    print(
        "| file | floor: read + `np.sort` per column | mlops-ops: `profile_parquet` | time ratio "
        "| floor peak RSS | mlops-ops peak RSS | before: in-memory profile | before: peak RSS | runs |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in sys.argv[1:]:
        for row in json.loads(Path(name).read_text())["summary"]:
            sort, mine, old = row["sort"], row["mlops"], row.get("memory")
            old_s = f"{old['wall_s']:.1f} s" if old else "not run"
            old_mem = f"{old['peak_rss_mib'] / 1024:.2f} GiB" if old else "-"
            print(
                f"| {row['rows'] / 1e6:.0f}M x {row['columns']} "
                f"| {sort['wall_s']:.1f} s | {mine['wall_s']:.1f} s | {row['time_ratio']:.2f}x "
                f"| {sort['peak_rss_mib'] / 1024:.2f} GiB | {mine['peak_rss_mib'] / 1024:.2f} GiB "
                f"| {old_s} | {old_mem} | {mine['runs']} |"
            )


if __name__ == "__main__":
    main()
