"""A stand-in for an areaDetector IOC streaming through NDPluginZMQ.

The endpoint takes the plugin's own ``serverHost`` syntax, ``transport://address [PUB|PUSH]
[BIND|CONNECT]``, with the same rules (NDPluginZMQ.cpp, ADZMQ >= 1.3): a ``*`` in the address
means bind; without a type a ``*`` means PUB, otherwise PUSH + connect. Sends use DONTWAIT and
a frame that would block is dropped, as the plugin does. Images are uint16 (by default) with a
moving diagonal pattern, headers in the psi, pre14 or Diamond chunk dialect.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import zmq

from recorder.errors import UsageError
from recorder.protocols import adzmq
from recorder.simulators.base import Simulator, any_port, merge_options, stopped

_DEFAULTS: dict[str, Any] = {
    "height": 48,
    "width": 64,
    "dtype": "uint16",
    "variant": "psi",
    "ndattr": True,
    "send_stop": False,
    "start_time": 1_000_000_000.0,
}


def socket_plan(server_host: str) -> tuple[str, int, bool]:
    """(address, socket type, bind?) from an NDPluginZMQ ``serverHost`` string."""
    address, *words = server_host.split()
    kind = words[0].upper() if words else ""
    how = words[1].upper() if len(words) > 1 else ""
    if kind in ("BIND", "CONNECT"):
        kind, how = "", kind
    star = "*" in address
    if kind in ("PUB", "SUB"):
        return address, zmq.PUB, not (how == "CONNECT" and not star)
    if kind in ("PUSH", "PULL"):
        return address, zmq.PUSH, how == "BIND" or star
    if kind:
        raise UsageError(f"unsupported ADZMQ socket type {kind!r} in {server_host!r}")
    return (address, zmq.PUB, True) if star else (address, zmq.PUSH, how == "BIND")


class AdzmqSimulator(Simulator):
    """Size options: height, width, dtype, variant (psi|pre14|chunk), ndattr (attach a few
    NDAttributes), send_stop (a final ``STOP`` frame), start_time (EPICS seconds of frame 1).
    `rate` is frames per second; `skip` holds frame numbers (message i is frame i + 1)."""

    rate: float  # always a number here (0: as fast as possible)

    def __init__(
        self,
        endpoint: str = "tcp://127.0.0.1:1234 PUB",
        *,
        rate: float = 30.0,
        count: int | None = None,
        skip: frozenset[int] = frozenset(),
        seed: int = 0,
        ctx: zmq.Context | None = None,
        wait_for_subscriber: bool = False,
        **size_options: Any,
    ):
        opts = merge_options("ADZMQ", size_options, _DEFAULTS)
        if opts["variant"] not in adzmq.VARIANTS:
            raise UsageError(f"unknown ADZMQ variant {opts['variant']!r}")
        if np.dtype(opts["dtype"]).name not in adzmq.DTYPES:
            raise UsageError(f"NDPluginZMQ cannot send {opts['dtype']!r} arrays")
        super().__init__(
            endpoint, rate=float(rate), count=count, skip=skip, seed=seed, ctx=ctx,
            wait_for_subscriber=wait_for_subscriber,
        )  # fmt: skip
        self.height, self.width = int(opts["height"]), int(opts["width"])
        self.dtype, self.variant = np.dtype(opts["dtype"]), opts["variant"]
        self.with_ndattr, self.send_stop = bool(opts["ndattr"]), bool(opts["send_stop"])
        self.start_time = float(opts["start_time"])
        self.address, self.socket_type, self.binds = socket_plan(endpoint)
        self._sock: zmq.Socket | None = None
        self.dropped = 0

    def seq(self, i: int) -> int:
        """NDArray uniqueId of message `i` (areaDetector counts from 1)."""
        return i + 1

    def image(self, i: int) -> np.ndarray:
        """A diagonal ramp moving 3 pixels per frame plus a little seeded noise."""
        y, x = np.mgrid[0 : self.height, 0 : self.width]
        noise = np.random.default_rng((self.seed, i)).integers(0, 8, (self.height, self.width))
        ramp = (x + y + 3 * i) * 16 + noise
        if self.dtype.kind == "f":
            return ramp.astype(self.dtype)
        return (ramp % (int(np.iinfo(self.dtype).max) + 1)).astype(self.dtype)

    def ndattr(self, i: int) -> dict[str, Any]:
        if not self.with_ndattr:
            return {}
        return {
            "ColorMode": np.int32(0),
            "Exposure": np.float32(0.01 * (1 + i % 5)),
            "Temperature": 21.5 + 0.01 * i,
            "Counter": np.uint32(self.seq(i)),
            "Camera": "sim",
        }

    def timestamp(self, i: int) -> float:
        return self.start_time + i / (self.rate if self.rate > 0 else 1000.0)

    def message(self, i: int) -> list[bytes]:
        """Header and data frames of the i-th array."""
        return adzmq.encode_array(
            self.image(i), self.seq(i), self.timestamp(i), self.ndattr(i), self.variant
        )

    def _open(self) -> str:
        """Create the socket and bind or connect it as the plugin would."""
        kind = self.socket_type
        if kind == zmq.PUB and self.wait_for_subscriber:
            kind = zmq.XPUB
        sock = self.socket(kind, linger=1000)
        address = any_port(self.address)
        try:
            if self.binds:
                sock.bind(address)
                endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
            else:
                sock.connect(address)
                endpoint = address
        except zmq.ZMQError as exc:
            raise UsageError(
                f"cannot {'bind' if self.binds else 'connect'} {address!r}: {exc}"
            ) from exc
        self._sock = sock
        return endpoint

    def _wait_for_peer(self, stop: threading.Event | None) -> bool:
        """XPUB: until a subscription arrives. PUSH: until the socket can take a message."""
        assert self._sock is not None
        xpub = self._sock.type == zmq.XPUB
        if not xpub and self._sock.type != zmq.PUSH:
            return True
        while not (stop is not None and stop.is_set()):
            if xpub and self._sock.poll(50, zmq.POLLIN):
                if self._sock.recv()[:1] == b"\x01":
                    return True
            elif not xpub and self._sock.poll(50, zmq.POLLOUT):
                return True
        return False

    def _send(self, frames: list[bytes]) -> bool:
        assert self._sock is not None
        try:
            self._sock.send_multipart(frames, zmq.DONTWAIT)
        except zmq.Again:
            self.dropped += 1
            return False
        return True

    def _serve(self, stop: threading.Event | None) -> bool:
        """Send until `count` frames (skipped ones included) or `stop`; True at the end."""
        if self.wait_for_subscriber and not self._wait_for_peer(stop):
            return False
        t0 = time.monotonic()
        i = 0
        finished = True
        while self.count is None or i < self.count:
            if self.rate > 0:
                delay = t0 + i / self.rate - time.monotonic()
                if stop is not None and stop.wait(max(0.0, delay)):
                    finished = False
                    break
                if stop is None and delay > 0:
                    time.sleep(delay)
            elif stopped(stop):
                finished = False
                break
            if self.seq(i) not in self.skip and self._send(self.message(i)):
                self.sent += 1
            i += 1
        if self.send_stop:
            self._send([adzmq.STOP])
        return finished

    def close(self, linger: int | None = None) -> None:
        super().close(linger)
        self._sock = None
