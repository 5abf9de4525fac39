"""A stand-in for the Open Ephys GUI with the ZMQ Interface plugin.

It binds PUB on the data port and REP on data port + 1 like the plugin (moving both up by 2
when the heartbeat port is taken), sends one DATA message per channel per block, a TTL event
and a spike now and then, and answers heartbeats with the GUI's exact replies. Every message is
a pure function of its index (`message`), so tests can compare what arrives with what was sent.

``format``: ``current`` (data headers with ``channel_name``, as the plugin sends since mid-2025)
or ``older`` (without it). ``plugin=event-broadcaster`` stands in for the GUI's other ZMQ plugin
instead (recorder/simulators/event_broadcaster.py): TTL and spike events only, one PUB, no
heartbeat socket.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import numpy as np
import zmq

from recorder.errors import UsageError
from recorder.protocols import openephys as oe
from recorder.simulators.base import (
    SERVICE_EVERY,
    Simulator,
    merge_options,
    poll_ms,
    tcp_endpoint,
    wait_for_subscriber,
)

_DEFAULTS: dict[str, Any] = {
    "n_channels": 8,
    "n_samples": 256,
    "sample_rate": 30000.0,
    "legacy": False,
    "stream": "example_data",
    "source_node": 100,
    "ttl_every": 4,
    "spike_every": 8,
    "spike_channels": 4,
    "spike_samples": 40,
    "start_ms": 1_700_000_000_000,
    "format": "current",
    "message_every": 0,
    "message_text": "message {n}",
}
FORMATS = ("current", "older")
"""ZMQ Interface data headers: with ``channel_name`` (current) or without (older plugins)."""
EVENT_BROADCASTER = "event-broadcaster"
PLUGINS = ("zmq-interface", EVENT_BROADCASTER)
MESSAGE_EVENT = 5  # oe.EVENT_TYPES: MESSAGE (a text event; the payload frame is the text)


class OpenEphysSimulator(Simulator):
    """Size options: n_channels, n_samples, sample_rate, legacy (0.2.0 whole-block messages),
    format (current or older), stream, source_node, ttl_every / spike_every (blocks; 0 =
    never), spike_channels, spike_samples, start_ms (wall clock of block 0), message_every
    (blocks; 0 = never: a text event of type MESSAGE saying message_text, where ``{n}``
    counts them from 0). `rate` is blocks per second, `count` counts messages and `skip`
    holds message_num values (message i has message_num i + 1). ``plugin=event-broadcaster``
    makes an `EventBroadcasterSimulator`."""

    rate: float  # always a number here (0: as fast as possible)

    def __new__(cls, *args: Any, plugin: str = "zmq-interface", **kwargs: Any):
        if plugin not in PLUGINS:
            raise UsageError(f"Open Ephys plugin {plugin!r}: one of {', '.join(PLUGINS)}")
        if cls is OpenEphysSimulator and plugin == EVENT_BROADCASTER:
            from recorder.simulators.event_broadcaster import EventBroadcasterSimulator

            return super().__new__(EventBroadcasterSimulator)
        return super().__new__(cls)

    def __init__(
        self,
        endpoint: str = "tcp://127.0.0.1:5556",
        *,
        rate: float = 30.0,
        count: int | None = None,
        skip: frozenset[int] = frozenset(),
        seed: int = 0,
        ctx: zmq.Context | None = None,
        wait_for_subscriber: bool = False,
        plugin: str = "zmq-interface",
        **size_options: Any,
    ):
        opts = merge_options("Open Ephys", size_options, _DEFAULTS)
        if opts["format"] not in FORMATS:
            raise UsageError(f"Open Ephys format {opts['format']!r}: one of {', '.join(FORMATS)}")
        self.format = str(opts["format"])
        super().__init__(
            endpoint, rate=float(rate), count=count, skip=skip, seed=seed, ctx=ctx,
            wait_for_subscriber=wait_for_subscriber,
        )  # fmt: skip
        self.n_channels, self.n_samples = int(opts["n_channels"]), int(opts["n_samples"])
        self.sample_rate, self.legacy = float(opts["sample_rate"]), bool(opts["legacy"])
        self.stream, self.source_node = str(opts["stream"]), int(opts["source_node"])
        self.ttl_every, self.spike_every = int(opts["ttl_every"]), int(opts["spike_every"])
        self.spike_channels = max(1, min(int(opts["spike_channels"]), self.n_channels))
        self.spike_samples, self.start_ms = int(opts["spike_samples"]), int(opts["start_ms"])
        self.message_every = int(opts["message_every"])
        self.message_text = str(opts["message_text"])
        self._pub: zmq.Socket | None = None
        self._rep: zmq.Socket | None = None
        self._poller = zmq.Poller()
        self.heartbeat_endpoint: str | None = None
        self.heartbeats: list[bytes] = []
        self._layout = self._period_layout()
        self._period_blocks = max(b for _, b, _ in self._layout) + 1
        self._block: tuple[int, np.ndarray] | None = None  # block_samples' last block

    # ------------------------------------------------------------------ content

    def _period_layout(self) -> list[tuple[str, int, int]]:
        """(kind, block offset, channel) of one period of blocks in which the event pattern
        repeats, so `plan(i)` is O(1) however long the run."""
        if self.legacy:
            return [("legacy", 0, 0)]
        every = (self.ttl_every, self.spike_every, self.message_every)
        period = math.lcm(*(max(e, 1) for e in every))
        layout = []
        for b in range(period):
            layout += [("data", b, ch) for ch in range(self.n_channels)]
            if self.ttl_every and b % self.ttl_every == self.ttl_every - 1:
                layout.append(("ttl", b, 0))
            if self.spike_every and b % self.spike_every == self.spike_every - 1:
                layout.append(("spike", b, 0))
            if self.message_every and b % self.message_every == self.message_every - 1:
                layout.append(("message", b, 0))
        return layout

    def plan(self, i: int) -> tuple[str, int, int]:
        """(kind, block, channel) of message `i`: kind is data, ttl, spike or legacy."""
        q, r = divmod(i, len(self._layout))
        kind, block, channel = self._layout[r]
        return kind, q * self._period_blocks + block, channel

    def seq(self, i: int) -> int:
        """message_num (message_no) of message `i`: the plugin counts from 1."""
        return i + 1

    def samples(self, block: int, channel: int) -> np.ndarray:
        """float32 samples of one channel in one block: a sine per channel plus seeded noise."""
        return self.block_samples(block)[channel]

    def block_samples(self, block: int) -> np.ndarray:
        """float32 samples of every channel in one block (channels x samples, read-only).
        Made once per block for all its channels (one generator, one sine call) and kept
        while the block's messages are sent: a data message costs its header, not the maths."""
        cached = self._block
        if cached is not None and cached[0] == block:
            return cached[1]
        t = (block * self.n_samples + np.arange(self.n_samples)) / self.sample_rate
        freq = 5.0 + np.arange(self.n_channels)[:, None]
        rng = np.random.default_rng((self.seed, 0, block))
        noise = rng.normal(0, 5.0, (self.n_channels, self.n_samples))
        wave = (100.0 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)
        wave.flags.writeable = False
        self._block = (block, wave)
        return wave

    def waveform(self, block: int) -> np.ndarray:
        rng = np.random.default_rng((self.seed, 1, block))
        shape = -80.0 * np.exp(-(((np.arange(self.spike_samples) - 10) / 3.0) ** 2))
        wave = shape[None, :] + rng.normal(0, 3.0, (self.spike_channels, self.spike_samples))
        return wave.astype(np.float32)

    def message(self, i: int) -> list[bytes]:
        """Frames of the i-th message (0-based), exactly as the plugin would send them."""
        kind, block, channel = self.plan(i)
        sample_num = block * self.n_samples
        ts = self.start_ms + (sample_num * 1000) // int(self.sample_rate or 1)
        common: dict[str, Any] = {
            "message_num": self.seq(i),
            "stream": self.stream,
            "timestamp_ms": ts,
        }
        if kind == "legacy":
            buf = self.block_samples(block)
            return oe.encode_legacy(
                buf, message_no=self.seq(i), timestamp=sample_num, sample_rate=int(self.sample_rate)
            )
        if kind == "data":
            return oe.encode_data(
                self.samples(block, channel),
                channel_num=channel,
                channel_name=f"CH{channel + 1}" if self.format == "current" else None,
                sample_num=sample_num,
                sample_rate=self.sample_rate,
                **common,
            )
        if kind == "ttl":
            n = block // max(self.ttl_every, 1)
            return oe.encode_ttl(
                source_node=self.source_node,
                sample_num=sample_num + 7,
                line=n % 8,
                state=bool(n % 2 == 0),
                **common,
            )
        if kind == "message":
            n = block // self.message_every
            return oe.encode_event(
                source_node=self.source_node,
                event_type=MESSAGE_EVENT,
                sample_num=sample_num + 11,
                data=self.message_text.replace("{n}", str(n)).encode("utf-8"),
                **common,
            )
        return oe.encode_spike(
            self.waveform(block),
            source_node=self.source_node,
            electrode="Tetrode 1",
            sample_num=sample_num + 20,
            threshold=[-50.0] * self.spike_channels,
            **common,
        )

    # ------------------------------------------------------------------ sockets

    def _open(self) -> str:
        """Bind PUB (XPUB when waiting for a subscriber) and the heartbeat REP on port + 1."""
        tcp = tcp_endpoint("Open Ephys", self.endpoint)
        random_port = tcp.port is None
        port = tcp.port
        for _ in range(20):
            pub = self.socket(zmq.XPUB if self.wait_for_subscriber else zmq.PUB, linger=1000)
            rep = None
            try:
                pub.bind(str(tcp._replace(port=port)))
                bound = tcp_endpoint("Open Ephys", pub.getsockopt_string(zmq.LAST_ENDPOINT))
                rep = self.socket(zmq.REP, linger=0)
                rep.bind(str(tcp._replace(port=bound.port).next_port()))
            except (zmq.ZMQError, UsageError):
                for sock in (pub, rep):
                    if sock is not None:
                        self.discard(sock)
                if not random_port:
                    port = (port or 0) + 2  # what the plugin does when its heartbeat port is taken
                continue
            self._pub, self._rep = pub, rep
            self._poller = zmq.Poller()
            self._poller.register(rep, zmq.POLLIN)
            self.heartbeat_endpoint = rep.getsockopt_string(zmq.LAST_ENDPOINT)
            return pub.getsockopt_string(zmq.LAST_ENDPOINT)
        raise UsageError(
            f"could not bind Open Ephys data and heartbeat ports near {self.endpoint!r}"
        )

    def _handle(self, until: float, stop: threading.Event | None) -> bool:
        """Answer heartbeats until `until` (monotonic); False if `stop` was set meanwhile."""
        assert self._rep is not None
        while True:
            if stop is not None and stop.is_set():
                return False
            left = until - time.monotonic()
            events = dict(self._poller.poll(poll_ms(left)))
            if self._rep in events:
                request = self._rep.recv()
                self.heartbeats.append(request)
                self._rep.send(oe.heartbeat_reply(request))
            elif left <= 0:
                return True

    def _serve(self, stop: threading.Event | None) -> bool:
        """Send until `count` messages (skipped ones included) or `stop`, answering heartbeats
        throughout; True when it ran to the end."""
        assert self._pub is not None
        if self.wait_for_subscriber and not wait_for_subscriber(self._pub, stop, self._handle):
            return False
        t0 = time.monotonic()
        i = 0
        while self.count is None or i < self.count:
            block = self.plan(i)[1]
            until = t0 + block / self.rate if self.rate > 0 else 0.0
            # messages already due go out back to back (a block's channels, or blocks that
            # fell due while waiting); heartbeats and `stop` are looked at between batches
            if (until > time.monotonic() or i % SERVICE_EVERY == 0) and not self._handle(
                until, stop
            ):
                return False
            if self.seq(i) not in self.skip:
                self._pub.send_multipart(self.message(i))
                self.sent += 1
            i += 1
        return True

    def close(self, linger: int | None = None) -> None:
        super().close(linger)
        self._pub = self._rep = None
