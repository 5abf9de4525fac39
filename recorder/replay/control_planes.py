"""Control planes a replayer keeps next to the data sockets, as the real servers do.

Each owns one socket, is polled by the thread that sends data, and answers or records what
clients send on it. Protocol descriptors name the planes they need by key; `CONTROL_PLANES`
maps each key to the class that serves it.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import zmq

from recorder.endpoints import parse_tcp, port_plus_one
from recorder.errors import UsageError
from recorder.protocols import RAW
from recorder.protocols.descriptor import BACKCHANNEL, CONTROLLED_DRIVER, HEARTBEAT
from recorder.protocols.openephys import heartbeat_reply
from recorder.replay.plan import StreamPlan

if TYPE_CHECKING:  # the writer (zarr) is imported once a client sends something back
    from recorder.store.run_writer import RunWriter
    from recorder.store.stream_writer import StreamWriter

_PEER_EVENTS = zmq.EVENT_ACCEPTED | zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED


def open_socket(
    ctx: zmq.Context,
    kind: int,
    endpoint: str,
    *,
    bind: bool,
    prepare: Callable[[zmq.Socket], None] | None = None,
) -> zmq.Socket:
    """`prepare` runs before the bind or connect: a peer can arrive the moment the socket is
    bound (a client already connecting retries every 100 ms), and options set or monitors
    attached after that miss it (its pipe keeps the default HWM, its ACCEPTED event is lost)."""
    sock = ctx.socket(kind)
    sock.linger = 0
    try:
        if prepare is not None:
            prepare(sock)
        sock.bind(endpoint) if bind else sock.connect(endpoint)
    except zmq.ZMQError as exc:
        sock.close()
        why = "is already in use" if exc.errno == zmq.EADDRINUSE else f"failed: {exc}"
        raise UsageError(f"{'bind' if bind else 'connect'} {endpoint} {why}") from exc
    except BaseException:
        sock.close()
        raise
    return sock


_AUTO_TRIES = 20  # free ports whose port + 1 was taken, tried before giving up


def open_served(
    ctx: zmq.Context, plan: StreamPlan, prepare: Callable[[zmq.Socket], None] | None = None
) -> zmq.Socket:
    """The stream's data socket, bound or connected as planned, `prepare`d first (see
    open_socket). An auto plan binds where ZeroMQ chooses and learns its endpoint (and its
    control planes', on port + 1) only now; a port whose neighbour is taken is given back and
    another one tried (prepared afresh)."""
    if not plan.auto:
        return open_socket(ctx, plan.zmq_type, plan.endpoint, bind=plan.bind, prepare=prepare)
    for _ in range(_AUTO_TRIES):
        sock = open_socket(ctx, plan.zmq_type, plan.endpoint, bind=True, prepare=prepare)
        bound = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        control = _next_port(bound) if plan.controls else None
        if not plan.controls or (control is not None and _port_free(control)):
            plan.endpoint, plan.auto = bound, False
            plan.controls = dict.fromkeys(plan.controls, control or "")
            return sock
        sock.close(linger=0)
    raise UsageError(f"no free loopback port with a free port + 1 for stream {plan.stream}")


def _next_port(endpoint: str) -> str | None:
    """Port + 1, None for the last port there is."""
    try:
        return port_plus_one(endpoint)
    except UsageError:
        return None


def _port_free(endpoint: str) -> bool:
    """Whether a tcp port can be bound now. Checked with a plain socket, which gives the port
    back at once (a closed ZeroMQ socket lets go of it later, in its I/O thread)."""
    tcp = parse_tcp(endpoint)
    assert tcp is not None and tcp.port is not None
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((tcp.host, tcp.port))
        except OSError:
            return False
    return True


def monitor_event(frames: list[bytes]) -> int:
    """The event number of a socket monitor message (its first frame: event, value), as
    zmq.utils.monitor reads it; that module imports asyncio, longer than a replayer's bind."""
    return struct.unpack("=hi", frames[0][:6])[0]


class PeerCounter:
    """Counts connected clients of a socket from its monitor events."""

    def __init__(self, sock: zmq.Socket):
        self.monitor = sock.get_monitor_socket(_PEER_EVENTS)
        self.peers = 0

    def handle(self) -> None:
        while self.monitor.poll(0):
            event = monitor_event(self.monitor.recv_multipart())
            if event in (zmq.EVENT_ACCEPTED, zmq.EVENT_CONNECTED):
                self.peers += 1
            elif event == zmq.EVENT_DISCONNECTED:
                self.peers = max(0, self.peers - 1)

    def close(self) -> None:
        self.monitor.close(linger=0)


@dataclass
class Serving:
    """What a control plane may need to know about the replay it serves."""

    ctx: zmq.Context
    runs_dir: Path
    run_id: str
    stream: str
    pause: Callable[[], None]
    resume: Callable[[], None]


class ControlPlane:
    sock: zmq.Socket
    run: RunWriter | None = None
    """A run this plane recorded what clients sent into, if any."""

    def handle(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.sock.close(linger=0)


class HeartbeatServer(ControlPlane):
    """The Open Ephys GUI's REP on data port + 1: answers every client heartbeat."""

    def __init__(self, ctx: zmq.Context, endpoint: str):
        self.sock = open_socket(ctx, zmq.REP, endpoint, bind=True)
        self.answered = 0

    def handle(self) -> None:
        while self.sock.poll(0):
            request = self.sock.recv()
            self.sock.send(heartbeat_reply(request))
            self.answered += 1


class BackChannel(ControlPlane):
    """pyMultiVideo's PULL on port + 1: what analysis clients send back (DRAW_BOX commands)
    is recorded into a new run linked to the replayed one."""

    def __init__(self, ctx: zmq.Context, endpoint: str, runs_dir, replay_of: str, stream: str):
        self.sock = open_socket(ctx, zmq.PULL, endpoint, bind=True)
        self.endpoint, self.runs_dir = endpoint, runs_dir
        self.replay_of, self.stream = replay_of, stream
        self.run: RunWriter | None = None
        self.writer: StreamWriter | None = None
        self.received = 0
        self._flushed = time.monotonic()

    def handle(self) -> None:
        while self.sock.poll(0):
            frames = self.sock.recv_multipart()
            if self.writer is None:
                from recorder.store.run_writer import RunWriter

                self.run = RunWriter(
                    self.runs_dir,
                    name=f"back-channel of {self.replay_of}",
                    tags=["back-channel"],
                    meta={"replay_of": self.replay_of, "replayed_stream": self.stream},
                )
                self.writer = self.run.add_stream(
                    "backchannel", protocol=RAW, endpoint=self.endpoint,
                    socket_type="PULL", role="bind",
                )  # fmt: skip
            self.writer.append(time.time_ns(), frames)
            self.received += 1
        if self.writer is not None and time.monotonic() - self._flushed >= 1.0:
            self.writer.flush()
            self._flushed = time.monotonic()

    def close(self) -> None:
        self.handle()  # what clients sent after the last look is recorded too
        self.sock.close(linger=0)
        if self.run is not None:
            self.run.close()


class AdzmqControl(ControlPlane):
    """Diamond's ZMQControlledDriver binds PUSH on port + 1 and says when to send:
    `{"acquire": "start"}` and `{"acquire": "stop"}`. The data server PULL-connects to it."""

    def __init__(self, ctx: zmq.Context, endpoint: str, on_start, on_stop):
        self.sock = open_socket(ctx, zmq.PULL, endpoint, bind=False)
        self.on_start, self.on_stop = on_start, on_stop
        self.commands: list[str] = []

    def handle(self) -> None:
        while self.sock.poll(0):
            raw = self.sock.recv()
            try:
                command = json.loads(raw).get("acquire")
            except (ValueError, AttributeError):
                continue
            self.commands.append(str(command))
            if command == "start":
                self.on_start()
            elif command == "stop":
                self.on_stop()


def _controlled_driver(endpoint: str, serving: Serving) -> AdzmqControl:
    serving.pause()  # the driver says when to start
    return AdzmqControl(serving.ctx, endpoint, on_start=serving.resume, on_stop=serving.pause)


#: control plane named by a protocol descriptor -> how a replay opens it
CONTROL_PLANES: dict[str, Callable[[str, Serving], ControlPlane]] = {
    HEARTBEAT: lambda endpoint, s: HeartbeatServer(s.ctx, endpoint),
    BACKCHANNEL: lambda endpoint, s: BackChannel(s.ctx, endpoint, s.runs_dir, s.run_id, s.stream),
    CONTROLLED_DRIVER: _controlled_driver,
}
