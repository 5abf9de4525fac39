"""Bytes a run takes on disk, for the runs list: what the filesystem allocated to the run's
folder (like `du`), which can be far more than the message bytes the catalog counts (chunk and
shard padding, frame tables, small files on big blocks).

Computed for the rows a page shows, never for the whole catalog, and kept in memory: a closed
run's files do not grow (a note or tag rewrites a few hundred bytes), so its figure is kept until
the process ends; a run being recorded is measured again after `LIVE_TTL_S`.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from pathlib import Path

LIVE_TTL_S = 5.0
MAX_CACHED = 50_000
_cache: OrderedDict[str, tuple[tuple, float, int]] = OrderedDict()
_lock = threading.Lock()


def _allocated(st: os.stat_result) -> int:
    return getattr(st, "st_blocks", 0) * 512 or st.st_size


def folder_bytes(path: Path) -> int:
    """Allocated bytes of `path` and everything under it, as `du -s -B1` counts them
    (st_blocks; a file with several links counted once)."""
    try:
        total = _allocated(os.stat(path))
    except OSError:
        return 0
    seen: set[tuple[int, int]] = set()
    stack = [str(path)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue  # removed meanwhile
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                        total += _allocated(st)
                    elif (st.st_dev, st.st_ino) not in seen:
                        seen.add((st.st_dev, st.st_ino))
                        total += _allocated(st)
        except OSError:
            continue
    return total


def run_disk_bytes(path: Path, *, key: tuple, live: bool) -> int:
    """The run folder's bytes on disk; `key` (e.g. status and end time) changes when the run
    may have changed; a `live` run is measured again every LIVE_TTL_S."""
    name = str(path)
    now = time.monotonic()
    with _lock:
        hit = _cache.get(name)
        if hit and hit[0] == key and not (live and now - hit[1] > LIVE_TTL_S):
            _cache.move_to_end(name)
            return hit[2]
    size = folder_bytes(path)
    with _lock:
        _cache[name] = (key, now, size)
        _cache.move_to_end(name)
        while len(_cache) > MAX_CACHED:
            _cache.popitem(last=False)
    return size
