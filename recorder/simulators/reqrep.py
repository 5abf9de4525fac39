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
from recorder.simulators.base import Simulator, stopped

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


class ReqRepServer(Simulator):
    """The tutorial's REP service; bind() then run() in a thread. `sent` counts replies."""

    drain_ms = 2000  # the last reply gets a moment to leave

    def __init__(
        self,
        endpoint: str = "tcp://127.0.0.1:5570",
        *,
        rate: float | None = None,
        count: int | None = None,
        skip: frozenset[int] | set[int] = frozenset(),
        seed: int = 0,
        ctx: zmq.Context | None = None,
        wait_for_subscriber: bool = False,
    ):
        """`rate`, `skip` and `wait_for_subscriber` exist for the common simulator shape only: a
        REP service answers at its clients' pace and must answer every request, so none apply."""
        if skip:
            raise ValueError("a REP service answers every request: skip must be empty")
        super().__init__(endpoint, rate=rate, count=count, skip=skip, seed=seed, ctx=ctx)
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

    def _open(self) -> str:
        sock = self.socket(zmq.REP, linger=0)
        sock.bind(self.endpoint)
        self._sock = sock
        return sock.getsockopt_string(zmq.LAST_ENDPOINT)

    def close(self, linger: int | None = None) -> None:
        super().close(linger)
        self._sock = None

    def _serve(self, stop: threading.Event | None) -> bool:
        """Answer requests until `count` replies went out or `stop`; True at the end."""
        sock = self._sock
        assert sock is not None
        while self.count is None or self.sent < self.count:
            while not sock.poll(_POLL_MS, zmq.POLLIN):
                if stopped(stop):
                    return False
            frames = sock.recv_multipart()
            sock.send(self.reply_to(frames[0]) if len(frames) == 1 else ERROR_REPLY)
            self.sent += 1
        return True
