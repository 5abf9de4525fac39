"""A queue bounded by bytes, between a receive thread and a writer thread.

The receive thread must never block on a slow disk (a SUB socket would drop silently inside
zmq), so a full queue refuses the batch and the caller counts it as dropped. The receive
process's batches (receive_apart.py) wait for room instead (`put`): its pipe holds what comes
meanwhile, and the process counts what does not fit there.

A waiting taker is woken once `wake_bytes` are queued, not for every batch: it takes them all
at once (or what there is at its timeout, or at close). Each wake-up is a thread switch and a
pass through the writer's per-batch work; for 1 MiB messages one per message was a third of
the switches a recording made, for no gain (nothing counts as recorded before a flush, and
the writer takes everything queued before it flushes).
"""

from __future__ import annotations

import threading
from collections import deque

WAKE_BYTES = 4 << 20


class ByteBoundedQueue:
    def __init__(self, max_bytes: int, wake_bytes: int = WAKE_BYTES):
        self.max_bytes = max_bytes
        self.wake_bytes = wake_bytes
        self._items: deque = deque()
        self._bytes = 0
        self._closed = False
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # items came (the taker waits on it)
        self._room = threading.Condition(lock)  # items went (a waiting putter waits on it)
        self._waiting = 0  # putters waiting for room

    def close(self) -> None:
        """No more items will come: wake the taker now instead of at its next timeout."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def drained(self) -> bool:
        return self._closed and not self._items

    def offer(self, item, nbytes: int) -> bool:
        """Add item unless that would pass the bound; never waits."""
        return self.put(item, nbytes, 0.0)

    def put(self, item, nbytes: int, timeout: float) -> bool:
        """Add item, waiting up to `timeout` seconds for room; False if there was none. For a
        receiver that has a buffer of its own behind it (the receive process's pipe), where
        waiting loses nothing and dropping would."""

        def room() -> bool:
            return not self._bytes or self._bytes + nbytes <= self.max_bytes

        with self._cond:
            if not room():
                if timeout <= 0:
                    return False
                self._waiting += 1
                try:
                    self._room.wait_for(room, timeout)
                finally:
                    self._waiting -= 1
                if not room():
                    return False
            self._items.append((item, nbytes))
            self._bytes += nbytes
            if self._bytes >= self.wake_bytes:
                self._cond.notify()
            return True

    def _taken(self) -> None:
        if self._waiting:
            self._room.notify_all()

    def take(self, timeout: float):
        """The oldest item, or None after `timeout` seconds without one."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            if not self._items:
                return None
            item, nbytes = self._items.popleft()
            self._bytes -= nbytes
            self._taken()
            return item

    def take_joined(self, timeout: float, max_items: int = 4096) -> list | None:
        """The oldest batch (as a list) with the batches queued behind it, up to `max_items`
        messages in all: a writer that fell behind catches up in large batches, which it
        decodes and writes for less per message. Joined after the lock is let go: a packed
        batch (receive_apart.PackedBatch) is unpacked as it is read, and the receive side
        must not wait for that to put the next one."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            if not self._items:
                return None
            first, nbytes = self._items.popleft()
            self._bytes -= nbytes
            taken, count = [first], len(first)
            while self._items and count + len(self._items[0][0]) <= max_items:
                item, nbytes = self._items.popleft()
                self._bytes -= nbytes
                taken.append(item)
                count += len(item)
            self._taken()
        if len(taken) == 1:
            return first if isinstance(first, list) else list(first)
        joined: list = []
        for item in taken:
            joined.extend(item)
        return joined

    @property
    def depth_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)
