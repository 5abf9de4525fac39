"""The cyclic garbage collector's pace while recordings run.

CPython collects its youngest generation every 700 net allocations of container objects. A
writer thread that decodes a batch of thousands of messages keeps its lists, tuples and views
alive for the whole batch, so every such collection finds them alive and moves them on, until
a full collection walks the whole heap (the recorder's modules, zarr, numpy: 30-80 ms each).
Measured on an Open Ephys recording of 40k messages with a receive process: 780 collections,
6 of them full, 250-470 ms in all (7-11 us per message, a fifth of the process's CPU). With
the youngest generation collected every 50 000 allocations the batch is gone before the next
collection: 2 collections, 30-105 ms.

Recordings free their data by reference counting and make no reference cycles per message, so
collecting less often does not let memory grow. The threshold is process-wide: it is raised
while recordings run (counted, as overlapping ones share it) and the one found is put back when
the last one ends, unless the program set another one meanwhile (replay/read_ahead does the
same for the switch interval)."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable

YOUNG_THRESHOLD = 50_000  # net container allocations between collections of generation 0

_lock = threading.Lock()
_users = 0  # recordings running in this process
_found: tuple[int, int, int] = (0, 0, 0)  # the thresholds the first of them found


def space_collections() -> Callable[[], None]:
    """Collect the youngest generation every YOUNG_THRESHOLD allocations (if it was more often;
    0, collection switched off, stays off) until the returned release is called (once is
    enough; more are harmless)."""
    global _users, _found
    with _lock:
        if _users == 0:
            _found = gc.get_threshold()
        _users += 1
        young, *older = gc.get_threshold()
        if 0 < young < YOUNG_THRESHOLD:
            gc.set_threshold(YOUNG_THRESHOLD, *older)
    released = threading.Event()

    def release() -> None:
        global _users
        with _lock:
            if released.is_set():
                return
            released.set()
            _users -= 1
            raised = 0 < _found[0] < YOUNG_THRESHOLD
            if _users == 0 and raised and gc.get_threshold() == (YOUNG_THRESHOLD, *_found[1:]):
                gc.set_threshold(*_found)

    return release
