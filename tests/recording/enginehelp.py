"""A source of numbered messages at a known rate, and what a run holds of it, for the recording
engine's tests (triggers, splits, pauses): the numbers say exactly which messages each run got."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import zmq

from recorder.store.reader import RunReader


class Numbered(threading.Thread):
    """An XPUB sending `b"%08d" % i` (padded to `size` bytes) at `rate` per second, from when
    the first subscriber joined until `count` or `stop()`; `sent_ns[i]` is when message i left."""

    def __init__(self, ctx: zmq.Context, rate: float, *, size: int = 8, count: int | None = None):
        super().__init__(daemon=True)
        self.rate, self.size, self.count = rate, size, count
        self.sock = ctx.socket(zmq.XPUB)
        self.sock.linger = 2000
        self.sock.sndhwm = 0
        self.sock.bind("tcp://127.0.0.1:*")
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.sent_ns: list[int] = []
        self.error: BaseException | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            if not self.sock.poll(20_000):
                raise TimeoutError("no subscriber joined")
            self.sock.recv()  # the subscription
            t0 = time.monotonic()
            i = 0
            pad = b"." * max(0, self.size - 8)
            while self.count is None or i < self.count:
                due = t0 + i / self.rate if self.rate else 0.0
                if self._halt.wait(max(0.0, due - time.monotonic())):
                    break
                self.sent_ns.append(time.time_ns())
                self.sock.send(b"%08d" % i + pad)
                i += 1
        except BaseException as exc:  # the test reports it
            self.error = exc
        finally:
            self.sock.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(10)
        assert self.error is None, self.error


def numbers(run_path: Path, stream: str = "main") -> list[tuple[int, int]]:
    """(number, recv_ns) of every message the run's stream holds, in order."""
    with RunReader(run_path) as run:
        return [(int(bytes(m.frames[0][:8])), m.recv_ns) for m in run.stream(stream).messages()]
