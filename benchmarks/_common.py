"""Benchmark hygiene shared by the scripts: prefaulting memory, fsync walks, medians."""

from __future__ import annotations

import os
import statistics
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np


def prefault(gib: float = 2.0) -> None:
    """Memory the host took back is slow to write into: touch some just before a timed run."""
    block = np.ones(int(gib * (1 << 30)) // 8, dtype=np.int64)
    block[:: 4096 // 8] += 1
    del block


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    """Make everything under path durable: files (concurrently, as a database would: the
    journal commits them together), then their folders."""
    dirs, files = [], []
    for root, _subdirs, names in os.walk(path):
        dirs.append(root)
        files.extend(os.path.join(root, n) for n in names)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(_fsync, files))
        list(pool.map(_fsync, dirs))


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
