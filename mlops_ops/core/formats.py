"""Source formats told from file names: Parquet or CSV, and the compression of a CSV file.

Free of pandas, so the Parquet ingest path does not import it (benchmarks/ingest: its import is
a fixed cost of every ingest task); :mod:`mlops_ops.core.data` re-exports these names.
"""

from __future__ import annotations

from mlops_ops.errors import DataError

#: file suffixes of the compressions read (standard library codecs) and pandas' name for each
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zip": "zip"}


def detect_format(name: str, declared: str = "auto") -> str:
    """``parquet`` or ``csv`` for a file ``name`` (``declared`` wins unless ``auto``).

    :raises DataError: the extension (after any compression suffix) is neither; names the file.
    """
    if declared != "auto":
        return declared
    lower = strip_compression(name.lower())
    if lower.endswith((".parquet", ".pq")):
        return "parquet"
    if lower.endswith((".csv", ".txt", ".tsv")):
        return "csv"
    raise DataError(
        f"cannot tell the format of {name!r} from its extension; set source.format to 'csv' or 'parquet'"
    )


def strip_compression(name: str) -> str:
    """``name`` without its compression suffixes (``a.csv.gz`` -> ``a.csv``)."""
    for suffix in COMPRESSIONS:
        name = name.removesuffix(suffix)
    return name


def compression_of(name: str) -> str | None:
    """The compression of a file by its suffix (``gzip``, ``bz2``, ``xz``, ``zip``), or None."""
    for suffix, method in COMPRESSIONS.items():
        if name.lower().endswith(suffix):
            return method
    return None
