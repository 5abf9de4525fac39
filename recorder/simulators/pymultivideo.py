"""A stand-in for one pyMultiVideo camera: PUB images at ``put_rate`` plus the PULL back-channel.

Like GUI/image_socket.py it binds both sockets (PUB on the data port, PULL on data port + 1 by
default) and keeps whatever analysis clients push back (e.g. DRAW_BOX commands) in `received`.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import numpy as np
import zmq

from recorder.errors import UsageError
from recorder.protocols import pymultivideo as pmv
from recorder.simulators.common import merge_options, wait_for_subscriber

_DEFAULTS: dict[str, Any] = {"height": 48, "width": 64, "unique_id": "cam0"}
_TCP = re.compile(r"^(?P<base>tcp://[^ ]+):(?P<port>\*|\d{1,5})$")


class PyMultiVideoSimulator:
    """Size options: height, width, unique_id. `rate` is the put rate in frames per second.
    pyMultiVideo has no frame counter: `skip` holds message indices."""

    def __init__(
        self,
        endpoint: str = "tcp://127.0.0.1:5555",
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
        self.endpoint, self.rate, self.count = endpoint, float(rate), count
        self.skip, self.seed, self.wait_for_subscriber = frozenset(skip), seed, wait_for_subscriber
        self.height, self.width = int(opts["height"]), int(opts["width"])
        self.unique_id = str(opts["unique_id"])
        self.pull_endpoint = pull_endpoint
        self._ctx = ctx or zmq.Context.instance()
        self._pub: zmq.Socket | None = None
        self._pull: zmq.Socket | None = None
        self.bound_endpoint: str | None = None
        self.received: list[list[bytes]] = []
        self.sent = 0

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

    @staticmethod
    def _tcp(endpoint: str) -> re.Match:
        m = _TCP.match(endpoint[:-2] + ":*" if endpoint.endswith(":0") else endpoint)
        if not m:
            raise UsageError(f"pyMultiVideo needs a tcp://HOST:PORT endpoint, got {endpoint!r}")
        return m

    def bind(self) -> str:
        """Bind PUB (XPUB when waiting for a subscriber) and the PULL back-channel; idempotent."""
        if self._pub is not None:
            return self.bound_endpoint or ""
        m = self._tcp(self.endpoint)
        pub = self._ctx.socket(zmq.XPUB if self.wait_for_subscriber else zmq.PUB)
        pub.setsockopt(zmq.LINGER, 1000)
        pull = self._ctx.socket(zmq.PULL)
        pull.setsockopt(zmq.LINGER, 0)
        try:
            pub.bind(f"{m['base']}:{m['port']}")
            self.bound_endpoint = pub.getsockopt_string(zmq.LAST_ENDPOINT)
            if self.pull_endpoint is None:
                port = m["port"] if m["port"] == "*" else str(int(m["port"]) + 1)
                pull.bind(f"{m['base']}:{port}")
            else:
                pull.bind(self.pull_endpoint)
            self.pull_endpoint = pull.getsockopt_string(zmq.LAST_ENDPOINT)
        except zmq.ZMQError as exc:
            pub.close(linger=0)
            pull.close()
            raise UsageError(
                f"cannot bind pyMultiVideo sockets at {self.endpoint!r}: {exc}"
            ) from exc
        self._pub, self._pull = pub, pull
        return self.bound_endpoint

    def _collect(self, until: float, stop: threading.Event | None) -> bool:
        """Keep what arrives on the back-channel until `until`; False if stopped."""
        assert self._pull is not None
        while True:
            if stop is not None and stop.is_set():
                return False
            left = until - time.monotonic()
            if self._pull.poll(max(0, min(left, 0.05)) * 1000):
                self.received.append(self._pull.recv_multipart())
            elif left <= 0:
                return True

    def run(self, stop: threading.Event | None = None) -> int:
        """Bind, then publish until `count` frames (skipped ones included) or `stop`; returns
        the number of frames sent. With no `count`, runs until `stop`."""
        self.bind()
        assert self._pub is not None
        try:
            if self.wait_for_subscriber and not wait_for_subscriber(self._pub, stop, self._collect):
                return self.sent
            t0 = time.monotonic()
            i = 0
            while self.count is None or i < self.count:
                until = t0 + i / self.rate if self.rate > 0 else time.monotonic()
                if not self._collect(until, stop):
                    break
                if i not in self.skip:
                    self._pub.send_multipart(self.message(i))
                    self.sent += 1
                i += 1
            return self.sent
        finally:
            self.close()

    def close(self) -> None:
        for sock in (self._pub, self._pull):
            if sock is not None:
                sock.close()
        self._pub = self._pull = None
