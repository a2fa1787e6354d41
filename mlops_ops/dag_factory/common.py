"""What every generated DAG shares."""

from __future__ import annotations

import datetime as dt
from typing import Any

START_DATE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)

DEFAULT_ARGS: dict[str, Any] = {
    "retries": 2,
    "retry_delay": dt.timedelta(minutes=2),
    "retry_exponential_backoff": True,
}
