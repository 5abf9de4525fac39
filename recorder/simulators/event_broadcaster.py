"""A stand-in for the Open Ephys GUI's Event Broadcaster plugin (open-ephys-plugins/
event-broadcaster, Source/EventBroadcaster.cpp).

The plugin binds one PUB on ``tcp://*:5557`` (the next free port up when that one is taken) and
has no heartbeat socket. Each TTL event and each spike is one message of two frames: a uint16
type (0 TTL, 1 spike) and either a JUCE JSON text (the default) or the GUI's serialized event
(``format=binary``): a 24-byte event header (base type, sub-type, processor, stream and channel
ids, int64 sample number, double timestamp in seconds) then the TTL payload, or for a spike a
26-byte header (the same plus a uint16 sorted id), float32 thresholds and the waveform.
"""

from __future__ import annotations

import struct
import threading
import time
from typing import Any

import numpy as np
import zmq

from recorder.errors import UsageError
from recorder.protocols import openephys as oe
from recorder.simulators.base import tcp_endpoint
from recorder.simulators.openephys import OpenEphysSimulator

BROADCAST_FORMATS = ("json", "binary")
PROCESSOR_EVENT, SPIKE_EVENT = 1, 2  # EventBase::Type
TTL_CHANNEL = 3  # EventChannel::Type::TTL
SPIKE_TYPES = {1: 1, 2: 2, 4: 3}  # channels -> SpikeChannel::Type SINGLE, STEREOTRODE, TETRODE
INVALID_SPIKE_TYPE = 100
EVENT_HEADER = struct.Struct("<BBHHHqd")  # EVENT_BASE_SIZE: 24 bytes
SPIKE_HEADER = struct.Struct("<BBHHHqdH")  # SPIKE_BASE_SIZE: 26 bytes
TTL_DATA = struct.Struct("<BBQ")  # line, state, word
PRE_PEAK_SAMPLES = 8  # SpikeChannel's default; the JSON amplitude is the sample after it
_PORT_TRIES = 100


def _f32(x: float) -> float:
    return float(np.float32(x))


class EventBroadcasterSimulator(OpenEphysSimulator):
    """``format``: json (the plugin's default) or binary. TTL events every ``ttl_every``
    blocks and spikes every ``spike_every``, with the ZMQ Interface simulator's content;
    ``rate`` is blocks per second, ``count`` counts messages."""

    def __init__(
        self,
        endpoint: str = "tcp://127.0.0.1:5557",
        *,
        format: str = "json",  # the plugin's own word for it
        **options: Any,
    ):
        if format not in BROADCAST_FORMATS:
            raise UsageError(
                f"Event Broadcaster format {format!r}: one of {', '.join(BROADCAST_FORMATS)}"
            )
        options.pop("plugin", None)
        super().__init__(endpoint, **options)
        if self.legacy:
            raise UsageError("the Event Broadcaster has no legacy format")
        self.format = format
        self.stream_id, self.channel_index = 0, 0

    def _period_layout(self) -> list[tuple[str, int, int]]:
        # the plugin sends TTL events and spikes only: no data, no text events
        layout = [(k, b, c) for k, b, c in super()._period_layout() if k in ("ttl", "spike")]
        if not layout:
            raise UsageError("the Event Broadcaster sends events only: ttl_every or spike_every")
        return layout

    # ------------------------------------------------------------------ content

    def message(self, i: int) -> list[bytes]:
        """Frames of the i-th event, exactly as the plugin sends them."""
        kind, block, _ = self.plan(i)
        sample_number = block * self.n_samples
        if kind == "ttl":
            n = block // max(self.ttl_every, 1)
            return self._ttl(sample_number + 7, line=n % 8, state=n % 2 == 0)
        return self._spike(sample_number + 20, self.waveform(block))

    def _ttl(self, sample_number: int, *, line: int, state: bool) -> list[bytes]:
        if self.format == "binary":
            word = (1 << line) if state else 0
            body = EVENT_HEADER.pack(
                PROCESSOR_EVENT, TTL_CHANNEL, self.source_node, self.stream_id,
                self.channel_index, sample_number, sample_number / self.sample_rate,
            ) + TTL_DATA.pack(line, int(state), word)  # fmt: skip
            return oe.encode_broadcast(oe.BROADCAST_TTL, body)
        return oe.encode_broadcast(
            oe.BROADCAST_TTL,
            {
                "event_type": "ttl",
                "stream": self.stream,
                "source_node": self.source_node,
                "sample_rate": _f32(self.sample_rate),
                "channel_name": "TTL Input",
                "sample_number": sample_number,
                "line": line,
                "state": state,
            },
        )

    def _spike(self, sample_number: int, wave: np.ndarray) -> list[bytes]:
        n_ch = wave.shape[0]
        if self.format == "binary":
            thresholds = np.full(n_ch, -50.0, dtype="<f4")
            header = SPIKE_HEADER.pack(
                SPIKE_EVENT, SPIKE_TYPES.get(n_ch, INVALID_SPIKE_TYPE), self.source_node,
                self.stream_id, self.channel_index, sample_number,
                sample_number / self.sample_rate, 0,
            )  # fmt: skip
            body = header + thresholds.tobytes() + wave.astype("<f4").tobytes()
            return oe.encode_broadcast(oe.BROADCAST_SPIKE, body)
        peak = min(PRE_PEAK_SAMPLES + 1, wave.shape[1] - 1)
        obj: dict[str, Any] = {
            "event_type": "spike",
            "stream": self.stream,
            "source_node": self.source_node,
            "electrode": "Tetrode 1",
            "num_channels": n_ch,
            "sample_rate": _f32(self.sample_rate),
            "sample_number": sample_number,
            "sorted_id": 0,
        }
        for ch in range(n_ch):
            obj[f"amp{ch + 1}"] = _f32(-wave[ch, peak])
        return oe.encode_broadcast(oe.BROADCAST_SPIKE, obj)

    # ------------------------------------------------------------------ sockets

    def _open(self) -> str:
        """One PUB (XPUB when waiting for a subscriber); a taken port: the next one up, as the
        plugin searches. No heartbeat REP: the plugin never had one."""
        tcp = tcp_endpoint("Event Broadcaster", self.endpoint)
        port = tcp.port
        for _ in range(_PORT_TRIES):
            pub = self.socket(zmq.XPUB if self.wait_for_subscriber else zmq.PUB, linger=1000)
            try:
                pub.bind(str(tcp._replace(port=port)))
            except zmq.ZMQError as exc:
                self.discard(pub)
                if port is None or exc.errno != zmq.EADDRINUSE:
                    why = f"Event Broadcaster: bind {self.endpoint} failed: {exc}"
                    raise UsageError(why) from exc
                port += 1
                continue
            self._pub, self._rep = pub, None
            self.heartbeat_endpoint = None
            return pub.getsockopt_string(zmq.LAST_ENDPOINT)
        raise UsageError(f"could not bind the Event Broadcaster near {self.endpoint!r}")

    def _handle(self, until: float, stop: threading.Event | None) -> bool:
        """Nothing to answer: wait until `until` (monotonic); False if `stop` was set."""
        while True:
            if stop is not None and stop.is_set():
                return False
            left = until - time.monotonic()
            if left <= 0:
                return True
            if stop is not None:
                stop.wait(min(left, 0.05))
            else:
                time.sleep(min(left, 0.05))
