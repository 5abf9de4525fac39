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
collecting less often does not let memory grow. The threshold is process-wide: raised while
recordings run, given back after (shared_setting.py)."""

from __future__ import annotations

import gc
from collections.abc import Callable

from recorder.shared_setting import SharedSetting

YOUNG_THRESHOLD = 50_000  # net container allocations between collections of generation 0


def _spaced(thresholds: tuple[int, ...]) -> tuple[int, ...]:
    """Generation 0 every YOUNG_THRESHOLD allocations if it was more often (0, collection
    switched off, stays off)."""
    young, *older = thresholds
    return (YOUNG_THRESHOLD, *older) if 0 < young < YOUNG_THRESHOLD else thresholds


_THRESHOLDS: SharedSetting[tuple[int, ...]] = SharedSetting(
    gc.get_threshold, lambda t: gc.set_threshold(*t), _spaced
)


def space_collections() -> Callable[[], None]:
    """Collect less often until the returned release is called (once is enough; more are
    harmless)."""
    return _THRESHOLDS.hold()
