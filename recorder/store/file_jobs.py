"""A few threads, shared by every stream of the process, for the file work of a flush.

Why: a stream flushes a dozen to a hundred arrays (columns, frame table, heap, segments), and
they are independent: nothing is committed until all of them are written (the stream's
attributes come last). One after the other on the writer thread, each column's zstd encoding
and each file's create, write and rename waited for the one before, though all of them release
the GIL. Measured on the final flush of 40k Open Ephys messages (64 channels, in process, 8
flushes each, alternated): 44-56 ms one after the other, 39-41 ms side by side (medians). A
close's trims, coordinates and compactions were tried the same way and gained nothing here (their
metadata files are written under the GIL and the file system's own locks): they stay in order.

A job that itself hands out jobs runs them in its own thread (the pool must never wait for
itself). Every job runs even when one fails, so a failure leaves no array half-handled by a
skipped job; the first failure, in the order given, is raised once all have ended.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

WORKERS = 4  # file system calls and zstd overlap well past two cores; more only queue
_START = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_inside = threading.local()  # set in the pool's threads


def _mark() -> None:
    _inside.worker = True


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _START:
        if _pool is None:
            _pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="file-jobs", initializer=_mark)
        return _pool


def run_all(jobs: Iterable[Callable[[], object]]) -> None:
    """Run every job, side by side where it pays; return when all have ended."""
    todo = list(jobs)
    if len(todo) < 2 or getattr(_inside, "worker", False):
        failures = [_failure(job) for job in todo]
    else:
        pool = _executor()
        futures: list[Future] = [pool.submit(job) for job in todo]
        failures = [future.exception() for future in futures]  # waits for each
    first = next((exc for exc in failures if exc is not None), None)
    if first is not None:
        raise first


def _failure(job: Callable[[], object]) -> BaseException | None:
    """What a job run here raised (None: it ran through)."""
    try:
        job()
    except Exception as exc:
        return exc
    return None
