"""Reading the store ahead of the replay clock, on a thread of its own.

The store is read in blocks (4096 messages of columns and frame table at a time): on the clock
thread every block read was a stall of ~13 ms at a 1 kHz replay, far over the pacing error a
`time.sleep` sender makes. A reader thread keeps a bounded backlog of decoded messages instead,
handed over in batches so the hand-over costs little per message even at --max-speed, and
mapping chunk files (which releases the GIL) overlaps with sending.

The backlog is bounded in bytes and messages, so memory stays flat however long the run; a
seek drops it (`close`) and starts a new one where the seek lands.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from recorder.shared_setting import SharedSetting

if TYPE_CHECKING:  # the reader imports zarr: a replay binds its sockets first
    from recorder.store.reader import Message

AHEAD_BYTES = 32 << 20  # frames read but not yet sent, at most about this many bytes
_BATCH_MESSAGES = 64  # handed over together
_BATCH_BYTES = 4 << 20
_SWITCH_S = 0.00005  # see pace_threads
_END = object()


_SWITCH = SharedSetting(
    sys.getswitchinterval,
    sys.setswitchinterval,
    lambda interval: min(interval, _SWITCH_S),
    lambda a, b: abs(a - b) < 1e-7,  # kept in whole microseconds
)


def pace_threads() -> Callable[[], None]:
    """Let a waiting clock thread take the GIL within 0.05 ms of asking, until the returned
    release is called (once is enough; more are harmless).

    The reader thread holds the GIL while it builds messages; CPython makes it let go only
    every switch interval (5 ms by default), which would be the clock thread's worst lateness.
    The interval is process-wide: lowered while paced replays run, given back after
    (shared_setting.py)."""
    return _SWITCH.hold()


class ReadAhead:
    """Iterate `messages` (the store's, for one selection) through a reader thread."""

    def __init__(self, messages: Iterator[Message], *, ahead_bytes: int = AHEAD_BYTES):
        self._source = messages
        self._batches: queue.Queue = queue.Queue(maxsize=max(2, ahead_bytes // _BATCH_BYTES))
        self._stop = threading.Event()
        self._batch: list[Message] = []
        self._next = 0
        self._thread = threading.Thread(target=self._read, daemon=True, name="read-ahead")
        self._thread.start()

    def _read(self) -> None:
        """Batches go over when full, or at once while the clock has nothing waiting (it is
        caught up, or the source is slow): batching only ever happens ahead of the clock."""
        batch: list[Message] = []
        size = 0
        end: object = _END
        try:
            for msg in self._source:
                batch.append(msg)
                size += sum(len(f) for f in msg.frames)
                if len(batch) >= _BATCH_MESSAGES or size >= _BATCH_BYTES or self._batches.empty():
                    if not self._put(batch):
                        return
                    batch, size = [], 0
        except BaseException as exc:  # the clock thread raises it where it reads, in order
            end = exc
        if batch and not self._put(batch):
            return
        self._put(end)

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._batches.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> ReadAhead:
        return self

    def __next__(self) -> Message:
        if self._next < len(self._batch):
            msg = self._batch[self._next]
            self._next += 1
            return msg
        try:
            item = self._batches.get_nowait()
        except queue.Empty:
            item = self._batches.get()
        if item is _END:
            self._batches.put(_END)  # asked again after the end: still the end
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        self._batch, self._next = item, 1
        return item[0]

    def close(self) -> None:
        """Stop reading and drop the backlog (a seek, a stop, the end of a loop)."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                while True:
                    self._batches.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(0.05)
        self._batch = []
        close = getattr(self._source, "close", None)
        if close is not None:
            close()
