"""A deterministic churn-like data set: numeric and categorical features, missing values, binary target.

Everything is seeded, so a test or the demo gets the same rows on every machine. ``drift`` moves
the feature distributions (for monitoring); ``label_noise`` flips a share of the labels, which
makes any model trained on the data worse (for the gate).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import pandas as pd

NUMERIC = ["tenure_months", "monthly_charges", "support_calls", "data_usage_gb"]
CATEGORICAL = ["contract", "region", "payment_method"]
TARGET = "churned"

_DATED = re.compile(r"^\d{4}-\d{2}-\d{2}\.")
_CONTRACTS = ["month_to_month", "one_year", "two_year"]
_REGIONS = ["north", "south", "east", "west"]
_PAYMENTS = ["card", "bank_transfer", "electronic_check", "mailed_check"]


def generate(
    n_rows: int, *, seed: int = 0, drift: float = 0.0, label_noise: float = 0.0, concept: float = 0.0
) -> pd.DataFrame:
    """``n_rows`` customers. ``drift`` in [0, 1+] shifts charges, support calls and the contract mix;
    ``concept`` in [0, 1+] changes how churn depends on them (a model trained before goes stale)."""
    rng = np.random.default_rng(seed)
    m2m = min(0.9, 0.55 + 0.15 * drift)
    contract = rng.choice(_CONTRACTS, size=n_rows, p=[m2m, (1 - m2m) * 0.55, (1 - m2m) * 0.45])
    region = rng.choice(_REGIONS, size=n_rows, p=[0.3, 0.3, 0.2, 0.2]).astype(object)
    payment = rng.choice(_PAYMENTS, size=n_rows, p=[0.35, 0.25, 0.25, 0.15])
    tenure = rng.integers(1, 73, size=n_rows)
    charges = np.round(rng.normal(70 + 12 * drift, 22, size=n_rows).clip(18, 140), 2)
    calls = rng.poisson(1.5 * (1 + 0.6 * drift), size=n_rows)
    usage = np.round(rng.lognormal(2.3, 0.6, size=n_rows), 3)

    logit = _logit(contract, tenure, charges, calls, payment, usage, concept)
    churned = (rng.random(n_rows) < 1 / (1 + np.exp(-logit))).astype("int64")
    if label_noise > 0:
        flip = rng.random(n_rows) < label_noise
        churned = np.where(flip, 1 - churned, churned)

    usage = usage.astype(float)
    usage[rng.random(n_rows) < 0.08] = np.nan
    region[rng.random(n_rows) < 0.03] = None
    return pd.DataFrame(
        {
            "tenure_months": tenure.astype("int64"),
            "monthly_charges": charges,
            "support_calls": calls.astype("int64"),
            "data_usage_gb": usage,
            "contract": pd.array(contract, dtype="string"),
            "region": pd.array(region, dtype="string"),
            "payment_method": pd.array(payment, dtype="string"),
            TARGET: churned,
        }
    )


def _logit(
    contract: np.ndarray,
    tenure: np.ndarray,
    charges: np.ndarray,
    calls: np.ndarray,
    payment: np.ndarray,
    usage: np.ndarray,
    concept: float,
) -> np.ndarray:
    """The log-odds of churn, the generator's own model of the world."""
    logit = (
        -1.2
        + 1.1 * (contract == "month_to_month")
        - 0.9 * (contract == "two_year")
        - 0.045 * tenure
        + 0.02 * (charges - 70)
        + 0.45 * calls
        + 0.5 * (payment == "electronic_check")
        - 0.15 * np.log1p(usage)
    )
    if concept:
        # a competitor targets heavy data users on long contracts; support calls matter less
        logit = (
            logit
            + concept * (1.2 * (np.log1p(usage) - 2.3) + 1.0 * (contract == "two_year"))
            - concept * 0.35 * calls
        )
    return np.asarray(logit, dtype="float64")


def churn_probability(frame: pd.DataFrame, *, concept: float = 0.0) -> np.ndarray:
    """The probability that each customer of ``frame`` churns, under the generator's own model
    (``concept`` as in :func:`generate`): what outcomes of predictions made on these rows are
    drawn from. A missing ``data_usage_gb`` (hidden after the draw in :func:`generate`) counts
    as the usage distribution's median, e^2.3 GB."""
    usage = pd.to_numeric(frame["data_usage_gb"], errors="coerce").fillna(float(np.exp(2.3)))
    logit = _logit(
        frame["contract"].astype(object).to_numpy(),
        pd.to_numeric(frame["tenure_months"]).to_numpy(dtype="float64"),
        pd.to_numeric(frame["monthly_charges"]).to_numpy(dtype="float64"),
        pd.to_numeric(frame["support_calls"]).to_numpy(dtype="float64"),
        frame["payment_method"].astype(object).to_numpy(),
        usage.to_numpy(dtype="float64"),
        concept,
    )
    return np.asarray(1 / (1 + np.exp(-logit)), dtype="float64")


def write_training_data(
    directory: str | Path,
    *,
    rows: int = 4000,
    seed: int = 0,
    label_noise: float = 0.0,
    fmt: str = "parquet",
    days: int = 14,
    end: dt.date | None = None,
) -> list[Path]:
    """Write ``rows`` rows as ``days`` daily partitions ``<YYYY-MM-DD>.<fmt>`` ending at ``end``.

    ``end`` defaults to today (UTC), so a run with today's logical date finds them all in its
    training window. Earlier partitions in ``directory`` are removed first.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.iterdir():
        if old.is_file() and (old.name.startswith("part-") or _DATED.match(old.name)):
            old.unlink()
    end = end or dt.datetime.now(dt.UTC).date()
    frame = generate(rows, seed=seed, label_noise=label_noise)
    paths = []
    for i, chunk in enumerate(np.array_split(np.arange(rows), days)):
        day = end - dt.timedelta(days=days - 1 - i)
        path = directory / f"{day.isoformat()}.{fmt}"
        part = frame.iloc[chunk]
        if fmt == "csv":
            part.to_csv(path, index=False)
        else:
            part.to_parquet(path, index=False)
        paths.append(path)
    return paths


def write_partitions(
    directory: str | Path,
    *,
    start: dt.date,
    days: int,
    rows_per_day: int = 1000,
    seed: int = 0,
    drift_from: dt.date | None = None,
    drift: float = 1.0,
    concept: float = 0.0,
) -> list[Path]:
    """Daily batches ``<directory>/<YYYY-MM-DD>.parquet``; from ``drift_from`` on they drift."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(days):
        day = start + dt.timedelta(days=i)
        shifted = drift_from is not None and day >= drift_from
        frame = generate(
            rows_per_day,
            seed=seed * 100_003 + (day - dt.date(2000, 1, 1)).days,
            drift=drift if shifted else 0.0,
            concept=concept if shifted else 0.0,
        )
        path = directory / f"{day.isoformat()}.parquet"
        frame.to_parquet(path, index=False)
        paths.append(path)
    return paths
