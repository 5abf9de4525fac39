"""A Karabo bridge server stand-in built on our own encoder.

It behaves on the wire like ``karabo_bridge.server.Sender`` (what ``karabo-bridge-server-sim``
and ``karabo-bridge-serve-files`` use): it binds, HWM 1, linger 0; REP answers each ``next``
with one train and anything else with ``Error: bad request <request>`` (that train is dropped);
PUB and PUSH send trains as they come. Trains carry an XGM-like slow source, an XGM-like pulse
resolved source and detector sources shaped like the real simulator's (``AGIPD``/``LPD``: full
real geometry, ``small``: a few KiB for tests). Content is deterministic in (seed, index), so
``message(i)`` reproduces the i-th train bit for bit, timestamps included.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import zmq

from recorder.protocols.karabo import encode_train, refuse_request
from recorder.simulators.base import Simulator, stopped

FIRST_TRAIN = 10_000_000_000
"""The real simulator's first train id."""
BASE_TIME = 1_700_000_000.0
"""Unix time of train 0: fixed so timestamps are deterministic (10 Hz trains after it)."""
_POLL_MS = 50


@dataclass(frozen=True)
class _Detector:
    source: str
    modules: int
    mod_y: int
    mod_x: int
    pulses: int


_DETECTORS = {
    "AGIPD": _Detector("SPB_DET_AGIPD1M-1/CAL/APPEND_CORRECTED", 16, 128, 512, 64),
    "LPD": _Detector("FXE_DET_LPD1M-1/CAL/APPEND_CORRECTED", 16, 256, 256, 300),
    "small": _Detector("SIM_DET_SMALL/CAL/APPEND_CORRECTED", 2, 16, 32, 4),
}
_XGM = "SA1_XTD2_XGM/DOOCS/MAIN"


class KaraboSimulator(Simulator):
    """Serves trains like ``karabo-bridge-server-sim``; bind() then run() in a thread."""

    drain_ms = 2000  # after the last train give zmq a moment to flush it, as serve-files does

    def __init__(
        self,
        endpoint: str = "tcp://127.0.0.1:4545",
        *,
        socket: str = "REP",
        protocol: str = "2.2",
        rate: float | None = 10.0,
        count: int | None = None,
        skip: frozenset[int] | set[int] = frozenset(),
        seed: int = 0,
        ctx: zmq.Context | None = None,
        detector: str = "small",
        n_sources: int = 1,
        wait_for_subscriber: bool = False,
    ):
        if socket not in ("REP", "PUB", "PUSH"):
            raise ValueError(f"socket must be REP, PUB or PUSH, not {socket!r}")
        protocol = str(protocol)  # `--set protocol=1.0` reads as the number 1.0
        if protocol not in ("1.0", "2.2"):
            raise ValueError(f"protocol must be 1.0 or 2.2, not {protocol!r}")
        if detector not in _DETECTORS:
            raise ValueError(f"detector must be one of {sorted(_DETECTORS)}, not {detector!r}")
        super().__init__(
            endpoint, rate=rate, count=count, skip=skip, seed=seed, ctx=ctx,
            wait_for_subscriber=wait_for_subscriber,
        )  # fmt: skip
        # `skip` holds train ids never sent (they show up as gaps)
        self.socket_type = socket
        self.protocol = protocol
        self.detector = _DETECTORS[detector]
        self.n_sources = n_sources
        self._sock: zmq.Socket | None = None
        self._base: np.ndarray | None = None

    # ------------------------------------------------------------------ content

    def train_id(self, i: int) -> int:
        return FIRST_TRAIN + i

    def _detector_sources(self) -> list[str]:
        src = self.detector.source
        if self.n_sources == 1:
            return [src]
        return [f"{src}-{k + 1}" for k in range(self.n_sources)]  # as the real simulator

    def _image(self, i: int) -> np.ndarray:
        """Detector frames: one random block per simulator, offset per train (fast, exact)."""
        d = self.detector
        if self._base is None:
            rng = np.random.default_rng(self.seed)
            shape = (d.modules, d.mod_y, d.mod_x, d.pulses)  # 'online' axis order
            self._base = rng.uniform(1500, 1600, size=shape).astype(np.float32)
        return self._base + np.float32(i % 1000)

    def train(self, i: int) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """(data, metadata) of the i-th train, keyed by source like ``Client.next()``."""
        tid = self.train_id(i)
        d = self.detector
        rng = np.random.default_rng((self.seed, i))
        pulses = rng.uniform(0.5, 1.5, size=d.pulses * 8).astype(np.float32)
        data: dict[str, dict[str, Any]] = {
            _XGM: {
                "pulseEnergy.photonFlux.value": float(pulses.mean()),
                "beamPosition.ixPos.value": float(rng.normal()),
                "beamPosition.iyPos.value": float(rng.normal()),
                "state.value": "ON",
            },
            _XGM + ":output": {
                "data.intensityTD": pulses,
                "data.xTD": rng.normal(size=pulses.size).astype(np.float32),
                "data.trainId": tid,
            },
        }
        image = self._image(i)
        domain = d.source.partition("/")[0]
        for src in self._detector_sources():
            values: dict[str, Any] = {
                "image.data": image,
                "image.cellId": np.arange(d.pulses, dtype=np.uint16),
                "image.passport": [
                    f"{domain}/CAL/{step}_Q1M1"
                    for step in ("THRESHOLDING", "OFFSET_CORR", "RELGAIN_CORR")
                ],
            }
            if d.modules > 1:
                values["sources"] = [f"{domain}/DET/{m}CH0:xtdf" for m in range(d.modules)]
                values["modulesPresent"] = [True] * d.modules
            values["image.gain"] = np.zeros((d.mod_y, d.mod_x, d.pulses), dtype=np.uint16)
            values["image.pulseId"] = np.arange(d.pulses, dtype=np.uint64)
            values["image.trainId"] = np.full(d.pulses, tid, dtype=np.uint64)
            data[src] = values
        timestamp = BASE_TIME + i / 10
        sec, _, frac = repr(timestamp).partition(".")
        metadata = {
            src: {
                "source": src,
                "timestamp": timestamp,
                "timestamp.tid": tid,
                "timestamp.sec": sec,
                "timestamp.frac": frac.ljust(18, "0"),
            }
            for src in data
        }
        return data, metadata

    def message(self, i: int) -> list[bytes]:
        """The frames of the i-th train exactly as `run` sends them."""
        data, metadata = self.train(i)
        return encode_train(data, metadata, self.protocol)

    # ------------------------------------------------------------------ socket

    def _open(self) -> str:
        kind = {"REP": zmq.REP, "PUSH": zmq.PUSH, "PUB": zmq.PUB}[self.socket_type]
        if kind == zmq.PUB and self.wait_for_subscriber:
            kind = zmq.XPUB  # same wire behaviour, but it tells us when a subscriber joins
        sock = self.socket(kind, linger=0)
        sock.set_hwm(1)
        sock.bind(self.endpoint)
        self._sock = sock
        return sock.getsockopt_string(zmq.LAST_ENDPOINT)

    def close(self, linger: int | None = None) -> None:
        super().close(linger)
        self._sock = None

    def _wait(self, events: int, stop: threading.Event | None) -> bool:
        """Poll until the socket is ready for `events`; False when stopped first."""
        assert self._sock is not None
        while not (stop is not None and stop.is_set()):
            if self._sock.poll(_POLL_MS, events):
                return True
        return False

    def _drain_subscriptions(self) -> None:
        assert self._sock is not None
        while self._sock.poll(0, zmq.POLLIN):
            self._sock.recv()

    def _serve(self, stop: threading.Event | None) -> bool:
        """Serve trains 0 .. `count`-1 (skipped and dropped ones included) or until `stop`;
        True when it ran to the end."""
        sock = self._sock
        assert sock is not None
        interval = 1.0 / self.rate if self.rate else 0.0
        due = time.monotonic()
        i = 0
        if sock.type == zmq.XPUB:
            if not self._wait(zmq.POLLIN, stop):
                return False
            self._drain_subscriptions()
        while self.count is None or i < self.count:
            if stopped(stop):
                return False
            index, i = i, i + 1
            if self.train_id(index) in self.skip:
                due += interval  # a missing train still takes its 100 ms slot
                continue
            frames = self.message(index)
            if sock.type == zmq.REP:
                if not self._wait(zmq.POLLIN, stop):
                    return False
                refusal = refuse_request(sock.recv_multipart())
                if refusal is not None:
                    sock.send_multipart(refusal)
                    continue  # the real server drops this train
            else:
                delay = due - time.monotonic()
                if delay > 0 and stop is not None and stop.wait(delay):
                    return False
                if delay > 0 and stop is None:
                    time.sleep(delay)
                due = max(due, time.monotonic()) + interval  # late: no catch-up burst
                if not self._wait(zmq.POLLOUT, stop):
                    return False
            sock.send_multipart(frames)
            self.sent += 1
            if sock.type == zmq.XPUB:
                self._drain_subscriptions()
        return True
