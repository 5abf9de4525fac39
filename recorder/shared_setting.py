"""A process-wide interpreter setting changed while some work runs, and given back after.

The replay clock needs a short GIL switch interval, a recording a slower garbage collector:
both settings belong to the whole process, and a Replayer or Recording used as a library
inside another program must not change that program's for good. So the setting is changed
while its users run (counted: overlapping ones share the change), and the value found by the
first is put back when the last one releases, unless the program set another value
meanwhile: its choice stands."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SharedSetting(Generic[T]):
    """`read`/`write` the setting; `wanted(current)` is what users need it to be (the current
    value when it already suits them); `same` compares two values (floats rounded by the
    interpreter need a tolerance)."""

    def __init__(
        self,
        read: Callable[[], T],
        write: Callable[[T], None],
        wanted: Callable[[T], T],
        same: Callable[[T, T], bool] = lambda a, b: a == b,
    ):
        self.read, self.write, self.wanted, self.same = read, write, wanted, same
        self._lock = threading.Lock()
        self._users = 0
        self._found: T | None = None

    def hold(self) -> Callable[[], None]:
        """Change the setting until the returned release is called (once is enough; more are
        harmless)."""
        with self._lock:
            current = self.read()
            if self._users == 0:
                self._found = current
            self._users += 1
            wanted = self.wanted(current)
            if not self.same(wanted, current):
                self.write(wanted)
        released = threading.Event()

        def release() -> None:
            with self._lock:
                if released.is_set():
                    return
                released.set()
                self._users -= 1
                found = self._found
                if self._users or found is None:
                    return
                ours = self.wanted(found)
                if not self.same(ours, found) and self.same(self.read(), ours):
                    self.write(found)

        return release
