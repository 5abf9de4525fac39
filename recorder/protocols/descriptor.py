"""Everything the recorder knows about one wire protocol, in one place.

Each protocol module ends with one `ProtocolDescriptor`, registered in `recorder.protocols`
(`get(name)`, `names()`, `descriptors()`). Recording, replay, the CLI and the simulators ask the
descriptor instead of branching on a protocol's name, so a new protocol is one module plus its
registration line.

A descriptor is data. What needs sockets (the heartbeat client a recording keeps, the control
planes a replay serves) lives in `recording/` and `replay/`; the descriptor names it by a key
(`HEARTBEAT`, `BACKCHANNEL`, `CONTROLLED_DRIVER`) and those packages map keys to classes.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import msgpack

from recorder.protocols.base import Codec, FrameBytes

# -- control planes: sockets the real server keeps on data port + 1 -------------------------

HEARTBEAT = "heartbeat"
"""Open Ephys: the GUI binds REP on data port + 1 and drops clients that stop heartbeating."""
BACKCHANNEL = "backchannel"
"""pyMultiVideo: the camera binds PULL on data port + 1 for what analysis clients send back."""
CONTROLLED_DRIVER = "adzmq-control"
"""ADZMQ: Diamond's ZMQControlledDriver binds PUSH on port + 1 and says when to start and stop;
the data server PULL-connects to it."""

# -- sniffing for `--protocol auto` ----------------------------------------------------------

NEUTRAL = "neutral"
"""Sniff label of a message that fits a protocol but does not identify it (ADZMQ's ``STOP``):
it counts for no protocol and against none."""
MAX_HEADER = 1 << 16
"""JSON / msgpack headers are small; bigger first frames are not headers."""

Sniff = Callable[[Sequence[FrameBytes]], str | None]
"""frames -> the protocol's name (or `NEUTRAL`) if the message looks like it, else None.
Cheap marks only (envelope bytes, a small header); never raises."""


def sniffer(check: Sniff) -> Sniff:
    """A sniff that never raises: garbage of any kind is just "not this protocol"."""

    def sniff(frames: Sequence[FrameBytes]) -> str | None:
        try:
            return check(frames)
        except Exception:
            return None

    sniff.__doc__, sniff.__name__ = check.__doc__, check.__name__
    return sniff


def head(frame: FrameBytes, n: int = 16) -> bytes:
    """The first `n` bytes of a frame, without copying the rest (envelopes are short)."""
    return bytes(memoryview(frame).cast("B")[:n])


def json_map(frame: FrameBytes) -> dict | None:
    """The frame as a small JSON object, or None."""
    data = bytes(frame)
    if len(data) > MAX_HEADER or not data.lstrip().startswith(b"{"):
        return None
    value = json.loads(data.decode("utf-8"))
    return value if isinstance(value, dict) else None


def msgpack_map(frame: FrameBytes, limit: int | None = MAX_HEADER) -> dict | None:
    """The frame as a msgpack map (at most `limit` bytes, None: any size), or None."""
    if limit is not None and memoryview(frame).nbytes > limit:
        return None
    value = msgpack.unpackb(frame, raw=False, strict_map_key=False)
    return value if isinstance(value, dict) else None


# -- the descriptor ----------------------------------------------------------------------------


class Responder(Enum):
    """How a replayed REP server picks the reply to a request."""

    SEQUENTIAL = "sequential"
    """The next recorded message, whatever was asked (a REQ recording of a streaming server)."""
    PAIRS = "pairs"
    """The recorded reply of the exchange whose request had the same bytes (request/reply)."""


@dataclass(frozen=True)
class Demo:
    """How `recorder serve --demo` runs this protocol's simulator."""

    options: Mapping[str, Any] = field(default_factory=dict)
    """Simulator options (rate, socket ...)."""
    source: Mapping[str, Any] = field(default_factory=dict)
    """Source settings beyond the endpoint that recording the simulator needs."""


@dataclass(frozen=True)
class StreamMeaning:
    """What a stream's numbers mean, stored with every stream (format 2: the stream's `meaning`
    attribute, and CF attributes on `seq` and `source_ns`) so a run explains itself."""

    seq: str = ""
    """What the sequence number is (e.g. ``frame id (NDArray uniqueId)``); "" when the protocol
    has none (seq is then always -1)."""
    source_time: str = ""
    """What `source_ns` is (e.g. ``NDArray timestamp``); "" when the protocol sends none."""
    source_epoch: str | None = None
    """When `source_ns` counts from as an ISO date (``1970-01-01`` Unix, ``1990-01-01`` EPICS),
    or None when it is not a wall clock (a sample counter's time, a device clock)."""
    columns: Mapping[str, str] = field(default_factory=dict)
    """Meaning of decoded columns, by column name (or by a name's prefix ending in ``/`` or
    ``.``): units, what codes such as an event_type stand for."""

    def as_attrs(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "source_time": self.source_time,
            "source_epoch": self.source_epoch,
            "columns": dict(self.columns),
        }


@dataclass(frozen=True)
class ProtocolDescriptor:
    name: str
    """What users type after ``--protocol`` and what a run's stream attributes say."""
    codec: Callable[[], Codec]
    """A fresh decoder (codecs may keep per-stream state: never share one between streams)."""
    default_socket: str = "SUB"
    """The socket the system's own clients open when the user does not say (the socket clients
    see, for a proxy)."""
    receive_apart: bool = False
    """Streams of many small messages a second (tens of thousands): received in a process of
    its own, so the writer thread does not fight the receiving for the GIL on every frame."""
    proxy: bool = False
    """Recorded as a transparent request/reply proxy: clients connect to the recorder, every
    request goes on to the real service, and each exchange is stored as one pair. Such a stream
    can only be replayed as REP."""
    companions: tuple[str, ...] = ()
    """Control planes a recording keeps alive next to its data socket when it connects, as the
    system's own clients do (`HEARTBEAT`)."""
    replay_controls: tuple[str, ...] = ()
    """Control planes a replay binds on data port + 1 next to a bound PUB, as the real server
    does (`HEARTBEAT`, `BACKCHANNEL`)."""
    controlled_by: str | None = None
    """The control plane that starts and stops sending with ``replay --controlled``
    (`CONTROLLED_DRIVER`: connected next to the data socket's peer endpoint)."""
    restart_first_seq: int | None = None
    """The sequence number a restarted source begins with, if the protocol says: the numbers
    before the first one seen after a restart were lost and count as gaps."""
    responder: Responder = Responder.SEQUENTIAL
    """How a replayed REP server answers requests."""
    refuse_request: Callable[[list[bytes]], list[bytes] | None] | None = None
    """SEQUENTIAL only: the real server's reply to a request it does not serve (no message is
    consumed), or None to serve it (the Karabo bridge answers only ``next``)."""
    sniff: Sniff | None = None
    """Recognise one message for ``--protocol auto``; None: never detected (auto gives raw)."""
    simulator: str | None = None
    """``module:Class`` of the faithful simulator, imported only when asked for."""
    demo: Demo | None = None
    """How ``serve --demo`` runs the simulator; None: not part of the demo."""
    meaning: StreamMeaning = field(default_factory=StreamMeaning)
    """What seq, source_ns and the decoded columns of this protocol's streams mean."""
    trains: bool = False
    """Each message is a train: sources holding keys (the Karabo bridge), which is what EXDF
    files hold and how a live view summarises it (its keys, not one array)."""
    channel_of: Callable[[Sequence[Any]], tuple[str, int] | None] | None = None
    """For protocols whose data messages each hold one channel's block (Open Ephys): the
    (stream, channel) of a message, None for other messages. A live view keeps every
    channel's latest block with it, since the latest message alone shows one channel."""

    def simulator_class(self) -> type | None:
        if self.simulator is None:
            return None
        module, _, cls = self.simulator.partition(":")
        return getattr(importlib.import_module(module), cls)
