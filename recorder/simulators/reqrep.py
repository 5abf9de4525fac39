"""A request/reply service like the pyzmq REQ/REP tutorial: it squares (100, 10) float64 arrays.

The client sends the array with ``send_pyobj`` (a pickle) or ``send_json`` (nested lists); the
reply is the square in the same encoding. This is the *service under test*, so unlike the
recorder it must read pickles. It only ever should see what our own test client sent, and to keep
a stray peer from running code through it: it binds loopback by default and its unpickler
resolves nothing but the three numpy names a pickled ndarray refers to.
"""

from __future__ import annotations

import io
import json
import pickle
import threading
from typing import Any

import numpy as np
import zmq

from recorder.protocols.reqrep import pack_pair, sniff_json, sniff_pickle

SHAPE = (100, 10)
ERROR_REPLY = b"Error: expected a pickled or JSON array"
_POLL_MS = 50
_ARRAY_GLOBALS = {
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ARRAY_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _load_array(request: bytes) -> np.ndarray:
    obj = _ArrayUnpickler(io.BytesIO(request)).load()
    if not isinstance(obj, np.ndarray):
        raise pickle.UnpicklingError("not an array")
    return obj


class ReqRepServer:
    """The tutorial's REP service; bind() then run() in a thread."""

    def __init__(
        self,
        endpoint: str = "tcp://127.0.0.1:5555",
        *,
        rate: float | None = None,
        count: int | None = None,
        skip: frozenset[int] | set[int] = frozenset(),
        seed: int = 0,
        ctx: zmq.Context | None = None,
    ):
        """`rate` and `skip` exist for the common simulator shape only: a REP service answers
        at its clients' pace and must answer every request, so neither can apply."""
        if skip:
            raise ValueError("a REP service answers every request: skip must be empty")
        self.endpoint = endpoint
        self.rate = rate
        self.count = count
        self.skip = frozenset(skip)
        self.seed = seed
        self.bound_endpoint: str | None = None
        self.ready = threading.Event()
        self._ctx = ctx
        self._own_ctx = ctx is None
        self._sock: zmq.Socket | None = None

    # ------------------------------------------------------------------ content

    def array(self, i: int) -> np.ndarray:
        return np.random.default_rng((self.seed, i)).random(SHAPE)

    def request(self, i: int, content: str = "pickle") -> bytes:
        """What the tutorial client sends: ``send_pyobj`` or ``send_json`` bytes of array i."""
        if content == "pickle":
            return pickle.dumps(self.array(i), protocol=pickle.DEFAULT_PROTOCOL)
        if content == "json":
            return json.dumps(self.array(i).tolist()).encode("utf8")
        raise ValueError(f"content must be 'pickle' or 'json', not {content!r}")

    def reply_to(self, request: bytes) -> bytes:
        """The service: square the array, answer in the request's encoding."""
        try:
            if sniff_pickle(request):
                squared = _load_array(request) ** 2
                return pickle.dumps(squared, protocol=pickle.DEFAULT_PROTOCOL)
            if sniff_json(request):
                squared = np.asarray(json.loads(request), dtype=np.float64) ** 2
                return json.dumps(squared.tolist()).encode("utf8")
        except Exception:  # a bad request gets an error reply, never kills the service
            return ERROR_REPLY
        return ERROR_REPLY

    def message(self, i: int) -> list[bytes]:
        """The stored pair of exchange i (pickle for even i, JSON for odd i)."""
        request = self.request(i, "json" if i % 2 else "pickle")
        return pack_pair([request], [self.reply_to(request)])

    # ------------------------------------------------------------------ socket

    def bind(self) -> str:
        if self._sock is None:
            if self._ctx is None:
                self._ctx = zmq.Context()
            sock = self._ctx.socket(zmq.REP)
            sock.linger = 0
            try:
                sock.bind(self.endpoint)
            except zmq.ZMQError:
                sock.close(linger=0)
                raise
            self._sock = sock
            self.bound_endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
            self.ready.set()
        assert self.bound_endpoint is not None
        return self.bound_endpoint

    def close(self, linger: int = 0) -> None:
        if self._sock is not None:
            self._sock.close(linger=linger)
            self._sock = None
        if self._own_ctx and self._ctx is not None:
            self._ctx.term()
            self._ctx = None

    def run(self, stop: threading.Event | None = None) -> int:
        """Bind and answer requests until `count` replies went out or `stop` is set."""
        self.bind()
        sock = self._sock
        assert sock is not None
        replies, finished = 0, False
        try:
            while self.count is None or replies < self.count:
                while not sock.poll(_POLL_MS, zmq.POLLIN):
                    if stop is not None and stop.is_set():
                        return replies
                frames = sock.recv_multipart()
                sock.send(self.reply_to(frames[0]) if len(frames) == 1 else ERROR_REPLY)
                replies += 1
            finished = True
            return replies
        finally:
            self.close(linger=2000 if finished else 0)
