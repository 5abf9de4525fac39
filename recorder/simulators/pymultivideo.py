"""A stand-in for one pyMultiVideo camera: PUB images at ``put_rate`` plus the PULL back-channel.

Like GUI/image_socket.py it binds both sockets (PUB on the data port, PULL on data port + 1 by
default) and keeps whatever analysis clients push back (e.g. DRAW_BOX commands) in `received`.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import zmq

from recorder.errors import UsageError
from recorder.protocols import pymultivideo as pmv
from recorder.simulators.base import (
    Simulator,
    merge_options,
    poll_ms,
    tcp_endpoint,
    wait_for_subscriber,
)

_DEFAULTS: dict[str, Any] = {"height": 48, "width": 64, "unique_id": "cam0"}


class PyMultiVideoSimulator(Simulator):
    """Size options: height, width, unique_id. `rate` is the put rate in frames per second.
    pyMultiVideo has no frame counter: `skip` holds message indices."""

    rate: float  # always a number here (0: as fast as possible)

    def __init__(
        self,
        endpoint: str = "tcp://127.0.0.1:5560",
        *,
        rate: float = 10.0,
        count: int | None = None,
        skip: frozenset[int] = frozenset(),
        seed: int = 0,
        ctx: zmq.Context | None = None,
        wait_for_subscriber: bool = False,
        pull_endpoint: str | None = None,
        **size_options: Any,
    ):
        opts = merge_options("pyMultiVideo", size_options, _DEFAULTS)
        super().__init__(
            endpoint, rate=float(rate), count=count, skip=skip, seed=seed, ctx=ctx,
            wait_for_subscriber=wait_for_subscriber,
        )  # fmt: skip
        self.height, self.width = int(opts["height"]), int(opts["width"])
        self.unique_id = str(opts["unique_id"])
        self.pull_endpoint = pull_endpoint
        self._pub: zmq.Socket | None = None
        self._pull: zmq.Socket | None = None
        self.received: list[list[bytes]] = []

    def timestamp(self, i: int) -> int:
        """Camera clock in ns; the first frame's timestamp is 0 as in the real GUI."""
        return round(i * 1e9 / (self.rate if self.rate > 0 else 1000.0))

    def image(self, i: int) -> np.ndarray:
        y, x = np.mgrid[0 : self.height, 0 : self.width]
        noise = np.random.default_rng((self.seed, i)).integers(0, 4, (self.height, self.width))
        return ((x + 2 * y + 5 * i + noise) % 256).astype(np.uint8)

    def message(self, i: int) -> list[bytes]:
        return pmv.encode_frame(
            self.image(i), unique_id=self.unique_id, timestamp=self.timestamp(i)
        )

    def _open(self) -> str:
        """Bind PUB (XPUB when waiting for a subscriber) and the PULL back-channel on port + 1
        (any free port when the data port is)."""
        tcp = tcp_endpoint("pyMultiVideo", self.endpoint)
        pub = self.socket(zmq.XPUB if self.wait_for_subscriber else zmq.PUB, linger=1000)
        pull = self.socket(zmq.PULL, linger=0)
        try:
            pub.bind(str(tcp))
            if self.pull_endpoint is None:
                pull.bind(str(tcp if tcp.port is None else tcp.next_port()))
            else:
                pull.bind(self.pull_endpoint)
        except zmq.ZMQError as exc:
            raise UsageError(
                f"cannot bind pyMultiVideo sockets at {self.endpoint!r}: {exc}"
            ) from exc
        self.pull_endpoint = pull.getsockopt_string(zmq.LAST_ENDPOINT)
        self._pub, self._pull = pub, pull
        return pub.getsockopt_string(zmq.LAST_ENDPOINT)

    def _collect(self, until: float, stop: threading.Event | None) -> bool:
        """Keep what arrives on the back-channel until `until`; False if stopped."""
        assert self._pull is not None
        while True:
            if stop is not None and stop.is_set():
                return False
            left = until - time.monotonic()
            if self._pull.poll(poll_ms(left)):
                self.received.append(self._pull.recv_multipart())
            elif left <= 0:
                return True

    def _serve(self, stop: threading.Event | None) -> bool:
        """Publish until `count` frames (skipped ones included) or `stop`, keeping what comes
        back; True when it ran to the end. With no `count`, runs until `stop`."""
        assert self._pub is not None
        if self.wait_for_subscriber and not wait_for_subscriber(self._pub, stop, self._collect):
            return False
        t0 = time.monotonic()
        i = 0
        while self.count is None or i < self.count:
            until = t0 + i / self.rate if self.rate > 0 else time.monotonic()
            if not self._collect(until, stop):
                return False
            if i not in self.skip:
                self._pub.send_multipart(self.message(i))
                self.sent += 1
            i += 1
        return True

    def close(self, linger: int | None = None) -> None:
        super().close(linger)
        self._pub = self._pull = None
