"""A plain ZeroMQ publisher, for the `raw` protocol and the first-minute demo.

It publishes a small JSON header and a 64x64 uint16 frame per message, a pattern no protocol
claims, so `--protocol auto` records it as raw.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import zmq

from recorder.simulators.base import Simulator, stopped, wait_for_subscriber


class RawSimulator(Simulator):
    """PUB on `endpoint` (a random loopback port by default); `rate` is messages per second."""

    rate: float  # always a number here (0: as fast as possible)
    drain_ms = 1000  # the last messages of a `count` get a moment to leave

    def __init__(
        self,
        endpoint: str = "tcp://127.0.0.1:*",
        *,
        rate: float = 100.0,
        count: int | None = None,
        skip: frozenset[int] = frozenset(),
        seed: int = 0,
        ctx: zmq.Context | None = None,
        wait_for_subscriber: bool = False,
    ):
        super().__init__(
            endpoint, rate=float(rate), count=count, skip=skip, seed=seed, ctx=ctx,
            wait_for_subscriber=wait_for_subscriber,
        )  # fmt: skip
        self._pub: zmq.Socket | None = None

    def message(self, i: int) -> list[bytes]:
        y, x = np.mgrid[0:64, 0:64]
        frame = ((x + y + i) % 64 * 1000).astype(np.uint16)
        header = json.dumps({"frame": i, "shape": [64, 64], "type": "uint16"}).encode()
        return [header, frame.tobytes()]

    def _open(self) -> str:
        self._pub = self.socket(zmq.XPUB if self.wait_for_subscriber else zmq.PUB, linger=0)
        self._pub.bind(self.endpoint)
        return self._pub.getsockopt_string(zmq.LAST_ENDPOINT)

    def close(self, linger: int | None = None) -> None:
        super().close(linger)
        self._pub = None

    def _serve(self, stop: threading.Event | None) -> bool:
        assert self._pub is not None
        if self.wait_for_subscriber and not wait_for_subscriber(self._pub, stop, _pause):
            return False
        t0 = time.monotonic()
        i = 0
        while self.count is None or i < self.count:
            if self.rate > 0:
                delay = t0 + i / self.rate - time.monotonic()
                if stop is not None and stop.wait(max(0.0, delay)):
                    return False
                if stop is None and delay > 0:
                    time.sleep(delay)
            elif stopped(stop):
                return False
            if i not in self.skip:
                self._pub.send_multipart(self.message(i))
                self.sent += 1
            i += 1
        return True


def _pause(until: float, stop: threading.Event | None) -> bool:
    """Nothing else to serve while waiting for a subscriber."""
    delay = max(0.0, until - time.monotonic())
    if stop is not None:
        return not stop.wait(delay)
    time.sleep(delay)
    return True
