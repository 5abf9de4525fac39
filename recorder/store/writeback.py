"""Handing a finished chunk file to the kernel's writeback as soon as it is written.

A recording writes faster than the kernel flushes on its own (it starts only once dirty pages
pass `dirty_background_ratio`), so without this a fast stream leaves gigabytes dirty in the page
cache: a power cut loses all of it, the final `fsync` (or the kernel, at a bad moment for
another writer) then waits for the lot, and a 1 GB run's fsync took 0.55 s here against 0.02 s
with it. Only chunks written for good are handed over: a partial chunk rewritten at every
flush would be written to disk again each time (a slow stream would wear its disk out).

Linux's `sync_file_range(SYNC_FILE_RANGE_WRITE)` starts the write and returns: no waiting for
the disk, no cache dropped (a replay following the recording still reads from memory).
Elsewhere, nothing happens and the kernel flushes as it always has.

Starting the write is work of its own (the kernel builds and submits the I/O in the caller's
thread, and waits when the disk's queue is full): on the writer thread it cost a typed Open
Ephys recording a quarter of its rate (writer CPU 22-24 -> 31-32 us a message). So the call is
made on a thread of its own, on a duplicate of the file's descriptor (the writer closes and
renames its file at once; the call releases the GIL). When that thread is far behind (a disk
much slower than the stream), files are left to the kernel's own flushing, as without this.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import sys
import threading
from collections.abc import Callable

_SYNC_FILE_RANGE_WRITE = 2  # <linux/fs.h>


def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        call = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    call.restype = ctypes.c_int
    return call


_CALL = _sync_file_range()
_BACKLOG = 256  # files waiting for the writeback thread; past that the kernel flushes them
_PENDING: queue.Queue[int] = queue.Queue(maxsize=_BACKLOG)
_START = threading.Lock()
_worker: threading.Thread | None = None


def start_writeback(fd: int) -> bool:
    """Have the whole file `fd` written to disk soon, without waiting for it; the caller may
    close `fd` at once. False where the system cannot, or the writeback thread is far behind
    (the kernel's own flushing applies). Nothing is lost either way: the data is in the page
    cache, so it is not an error."""
    if _CALL is None:
        return False
    _ensure_worker()
    try:
        mine = os.dup(fd)
    except OSError:
        return False
    try:
        _PENDING.put_nowait(mine)
    except queue.Full:
        os.close(mine)
        return False
    return True


def drain() -> None:
    """Wait until every file handed over so far has had its writeback started."""
    if _worker is not None:
        _PENDING.join()


def _ensure_worker() -> None:
    global _worker
    if _worker is not None and _worker.is_alive():
        return
    with _START:
        if _worker is None or not _worker.is_alive():
            _worker = threading.Thread(target=_work, name="writeback", daemon=True)
            _worker.start()


def _after_fork_in_child() -> None:
    """A forked child has no writeback thread, and the queue's lock may have been held by it at
    the fork: the child starts afresh (what the parent had queued is the parent's to do)."""
    global _PENDING, _START, _worker
    _PENDING = queue.Queue(maxsize=_BACKLOG)
    _START = threading.Lock()
    _worker = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _work() -> None:
    call = _CALL
    assert call is not None, "started only where the call exists"
    pending = _PENDING
    while True:
        fd = pending.get()
        try:
            call(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)
            pending.task_done()
