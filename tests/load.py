"""CPU load beside a test: busy processes that keep every core occupied while the test runs."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Iterator


def _spin(stop) -> None:  # a module-level function: spawned processes import it
    n = 0
    while not stop.is_set():
        for _ in range(100_000):
            n += 1


@contextlib.contextmanager
def busy_cpu(processes: int | None = None) -> Iterator[int]:
    """Run ``processes`` (default: one per core) busy loops until the block ends; yields the count."""
    count = processes or os.cpu_count() or 2
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    workers = [ctx.Process(target=_spin, args=(stop,), daemon=True) for _ in range(count)]
    for w in workers:
        w.start()
    try:
        yield count
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=30)
            if w.is_alive():
                w.terminate()
                w.join(timeout=10)
