"""Benchmark hygiene shared by the scripts: prefaulting memory, fsync walks, medians; the
recorder of this checkout as a command, free ports, and the CPU a process tree uses."""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import sys
import tempfile
import time
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


# -- the recorder as a command and what its processes cost (startup.py, demo_idle.py) ----------

ROOT = Path(__file__).resolve().parent.parent
# Bytecode cached as on a user's machine, where an installed package has its .pyc files: with
# PYTHONDONTWRITEBYTECODE set (as in some shells and CI images), every start compiled ~80 of the
# recorder's modules from source, 50 ms that made `record` look 2.0x the import baseline instead
# of 1.36x. The cache goes under the system's temporary folder, not into the checkout.
ENV = {
    **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
    "PYTHONPATH": str(ROOT),
    "PYTHONPYCACHEPREFIX": os.path.join(tempfile.gettempdir(), "zmq-recorder-bench-pycache"),
}
RECORDER = [sys.executable, "-m", "recorder"]
"""`python -m recorder` from this checkout (run it with `env=ENV`)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_percent(pid: int, seconds: float) -> tuple[float, int]:
    """CPU % (user + system; 100 % = one core) of a process and its children over `seconds`
    of wall time, and how many processes that was. The children alive at the start are
    counted: one started meanwhile is not seen, one that ended meanwhile is left out. `pid`
    may be this process."""
    import psutil

    root = psutil.Process(pid)
    procs = {p.pid: p for p in [root, *root.children(recursive=True)]}
    before = {}
    for p in procs.values():
        with contextlib.suppress(psutil.NoSuchProcess):
            before[p.pid] = sum(p.cpu_times()[:2])
    t0 = time.perf_counter()
    time.sleep(seconds)
    used = 0.0
    for p in procs.values():
        with contextlib.suppress(psutil.NoSuchProcess):
            used += sum(p.cpu_times()[:2]) - before.get(p.pid, 0.0)
    return 100 * used / (time.perf_counter() - t0), len(procs)


def io_thread_waits() -> dict[str, int]:
    """Nanoseconds each zmq I/O thread of this process has spent runnable but not running
    (waiting for a core), by thread id, from Linux's per-thread schedstat ({} where the system
    does not say). A sender whose I/O thread waits for a core is slowed by the machine, not by
    its own work."""
    waits: dict[str, int] = {}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return waits
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                if not f.read().startswith("ZMQbg/IO"):
                    continue
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                waits[tid] = int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return waits


def waited_since(before: dict[str, int]) -> float:
    """Seconds the I/O threads alive now waited for a core since `before` (io_thread_waits)."""
    return sum(ns - before.get(tid, 0) for tid, ns in io_thread_waits().items()) / 1e9
