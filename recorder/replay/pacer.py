"""The replay clock: when each message is due, under pause, speed changes and seeks.

Recorded receive times are mapped onto the wall clock by a base pair (recorded ns, wall s) that
is moved, never accumulated, on every change, so speed changes and pauses do not drift. Waiting
sleeps until shortly before the due time and spins the rest: plain sleeps overshoot by tens to
hundreds of microseconds, and a 1 kHz stream needs its p99 error under a millisecond.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

_SPIN_S = 0.0008  # busy-wait this close to the due time


class Pacer:
    def __init__(self, *, speed: float = 1.0, rate: float | None = None, max_speed: bool = False):
        self.speed = speed
        self.rate = rate
        self.max_speed = max_speed
        self.lock = threading.Lock()
        self.paused = False
        self._paused_at = 0.0
        self._base_ns: int | None = None  # recorded time at the base
        self._base_wall = 0.0
        self._count = 0  # messages since the base (rate mode)

    def rebase(self, recorded_ns: int | None) -> None:
        """The next message (recorded at `recorded_ns`) is due now."""
        with self.lock:
            self._base_ns = recorded_ns
            self._base_wall = time.perf_counter()
            self._count = 0
            if self.paused:  # (a step while paused) resume() must not add the time before
                self._paused_at = self._base_wall

    def due(self, recorded_ns: int) -> float:
        """Wall time (perf_counter) at which a message recorded at `recorded_ns` is due."""
        with self.lock:
            if self.max_speed:
                return 0.0
            if self._base_ns is None:
                self._base_ns, self._base_wall = recorded_ns, time.perf_counter()
            if self.rate:
                return self._base_wall + self._count / self.rate
            return self._base_wall + (recorded_ns - self._base_ns) / 1e9 / self.speed

    def sent(self) -> None:
        self._count += 1

    def set_speed(self, speed: float, at_ns: int | None) -> None:
        """From now on `speed`; the recorded position reached so far carries on (without
        `at_ns`), so the message being waited for is not sent at once."""
        with self.lock:
            paced = not (self.max_speed or self.rate)
            if at_ns is None and paced and self._base_ns is not None:
                now = self._paused_at if self.paused else time.perf_counter()
                at_ns = self._base_ns + int((now - self._base_wall) * 1e9 * self.speed)
            self.speed, self.rate, self.max_speed = speed, None, False
        self.rebase(at_ns)

    def pause(self) -> None:
        with self.lock:
            if not self.paused:
                self.paused, self._paused_at = True, time.perf_counter()

    def resume(self) -> None:
        with self.lock:
            if self.paused:
                self.paused = False
                self._base_wall += time.perf_counter() - self._paused_at

    def wait_until(self, when: float, idle: Callable[[float], None], stop: threading.Event) -> bool:
        """Wait for `when` (or while paused); `idle(timeout_s)` serves control sockets meanwhile.

        Returns False if stopped. A pause or speed change moves `when`: callers ask again.
        """
        while not stop.is_set():
            if self.paused:
                idle(0.05)
                return False
            left = when - time.perf_counter()
            if left <= 0:
                return True
            if left > _SPIN_S:
                idle(min(left - _SPIN_S, 0.05))
                continue
            while time.perf_counter() < when:
                pass
            return True
        return False
