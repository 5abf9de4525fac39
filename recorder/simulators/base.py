"""What every simulator does the same way: sockets, context, bind/close, running on a thread.

A simulator stands in for one system's server. Subclasses say which sockets it opens
(`_open`, using `socket()`) and what it sends (`message(i)`, `_serve`); the base opens them once
(`bind()` is idempotent and returns the data endpoint with a random port resolved), closes them
whatever happens, and runs `run(stop)` in the caller's thread or, with `start()`, on its own.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Collection
from typing import Any

import zmq

from recorder.endpoints import TcpEndpoint, parse_tcp
from recorder.errors import UsageError

log = logging.getLogger(__name__)


def merge_options(system: str, given: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The simulator's options: its defaults overridden by `given`; an unknown name is a
    UsageError (it reaches users through `recorder simulate --set`)."""
    unknown = set(given) - set(defaults)
    if unknown:
        raise UsageError(f"unknown {system} simulator options: {', '.join(sorted(unknown))}")
    return {**defaults, **given}


def any_port(address: str) -> str:
    """``tcp://host:0`` means any free port, as ``tcp://host:*`` does for zmq."""
    if address.startswith("tcp://") and address.endswith(":0"):
        return address[:-2] + ":*"
    return address


def tcp_endpoint(system: str, endpoint: str) -> TcpEndpoint:
    """Host and port of a simulator that needs a TCP port (its control socket sits on + 1)."""
    tcp = parse_tcp(any_port(endpoint))
    if tcp is None:
        raise UsageError(f"{system} needs a tcp://HOST:PORT endpoint, got {endpoint!r}")
    return tcp


def wait_for_subscriber(
    xpub: zmq.Socket,
    stop: threading.Event | None,
    serve_until: Callable[[float, threading.Event | None], bool],
) -> bool:
    """Hold the first message until a subscriber has joined (an XPUB sees its subscription),
    serving the simulator's other sockets meanwhile; False if stopped first."""
    while not (stop is not None and stop.is_set()):
        if xpub.poll(0, zmq.POLLIN) and xpub.recv()[:1] == b"\x01":
            return True
        serve_until(time.monotonic() + 0.02, stop)
    return False


POLL_SLICE_S = 0.05
"""A simulator waiting for its next message looks at `stop` at least this often."""
SERVICE_EVERY = 64
"""Messages sent back to back (already due) between looks at the other sockets and `stop`."""


def poll_ms(left: float) -> int:
    """A poll timeout in whole milliseconds that waits at least `left` seconds (at most a
    slice): rounding down would poll with 0 for the last millisecond and spin a core."""
    return math.ceil(max(0.0, min(left, POLL_SLICE_S)) * 1000)


def stopped(stop: threading.Event | None) -> bool:
    return stop is not None and stop.is_set()


class Simulator:
    """Common shape: ``Simulator(endpoint, rate=, count=, skip=, seed=, ctx=)``, `message(i)`,
    `bind()`, `run(stop)`, `close()`, and `start()` / `stop()` to run on a thread.

    Without `ctx` the simulator makes its own context and ends it on close, which waits for
    what the sockets' linger lets zmq still deliver.
    """

    drain_ms: int | None = None
    """Linger when `run` sent everything it was asked to (None: each socket's own)."""

    def __init__(
        self,
        endpoint: str,
        *,
        rate: float | None,
        count: int | None,
        skip: Collection[int],
        seed: int,
        ctx: zmq.Context | None,
        wait_for_subscriber: bool = False,
    ):
        self.endpoint = endpoint
        self.rate, self.count, self.skip, self.seed = rate, count, frozenset(skip), seed
        self.wait_for_subscriber = wait_for_subscriber
        self.bound_endpoint: str | None = None
        self.sent = 0
        self.ready = threading.Event()
        """Set once bound: a test thread may wait on it instead of sleeping."""
        self.error: BaseException | None = None
        """What ended a `start()`ed run, if it failed."""
        self._ctx = ctx
        self._own_ctx = ctx is None
        self._sockets: list[zmq.Socket] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # -- for subclasses ------------------------------------------------------------------------

    def message(self, i: int) -> list[bytes]:
        """Frames of the i-th message, exactly as `run` sends them."""
        raise NotImplementedError

    def _open(self) -> str:
        """Open and bind (or connect) the sockets with `socket()`; return the data endpoint."""
        raise NotImplementedError

    def _serve(self, stop: threading.Event | None) -> bool:
        """Send until `count` or `stop`, counting `sent`; True when it ran to the end."""
        raise NotImplementedError

    def socket(self, kind: int, *, linger: int) -> zmq.Socket:
        """A new socket of this simulator, closed with it."""
        if self._ctx is None:
            self._ctx = zmq.Context()
        sock = self._ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, linger)
        self._sockets.append(sock)
        return sock

    def discard(self, sock: zmq.Socket) -> None:
        """Close a socket `_open` gave up on (e.g. to try another port)."""
        self._sockets.remove(sock)
        sock.close(linger=0)

    # -- the common part -----------------------------------------------------------------------

    def bind(self) -> str:
        """Open the sockets now (run() does it too); idempotent. Returns the real endpoint."""
        if not self._sockets:
            try:
                self.bound_endpoint = self._open()
            except BaseException:
                self.close(linger=0)
                raise
            self.ready.set()
        assert self.bound_endpoint is not None
        return self.bound_endpoint

    def run(self, stop: threading.Event | None = None) -> int:
        """Bind, then send until `count` messages (skipped ones included) or `stop`; returns the
        number of messages sent. The sockets are closed when it returns."""
        self.bind()
        finished = False
        try:
            finished = self._serve(stop)
            return self.sent
        finally:
            self.close(linger=self.drain_ms if finished else None)

    def close(self, linger: int | None = None) -> None:
        """Close every socket (with `linger`, or each one's own) and an own context."""
        sockets, self._sockets = self._sockets, []
        for sock in sockets:
            sock.close(linger=linger)
        if self._own_ctx and self._ctx is not None:
            self._ctx.term()
            self._ctx = None

    def start(self) -> str:
        """Bind, then `run` on a daemon thread until `count` or `stop()`; returns the endpoint."""
        endpoint = self.bind()
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run_thread, name=f"simulator-{type(self).__name__}", daemon=True
        )
        self._thread.start()
        return endpoint

    def _run_thread(self) -> None:
        try:
            self.run(self._stop)
        except BaseException as exc:  # reported through .error, and logged
            self.error = exc
            log.warning("%s stopped: %s", type(self).__name__, exc)

    def stop(self, timeout: float | None = 10.0) -> int:
        """End a `start()`ed run and wait for its thread; returns the number of messages sent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        return self.sent

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
