"""The receive side of a recording: socket loops that behave like each system's real clients.

Each loop runs on the stream's receive thread, owns its sockets (zmq sockets are not
thread-safe), stamps every message with the host time it arrived and hands batches to `emit`.
`emit(batch, nbytes)` takes a Batch (recorder.contracts): (recv_ns, frames, extra columns or None)
per message, built as plain tuples (a NamedTuple would double the per-message cost).
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

import zmq

from recorder.contracts import Batch, ColumnValue
from recorder.protocols.descriptor import HEARTBEAT
from recorder.protocols.openephys import HeartbeatClient
from recorder.protocols.reqrep import pack_pair

_DRAIN = 512  # messages taken per wake-up before handing a batch to the writer
_DRAIN_BYTES = 2 << 20  # ... or this many bytes: large frames reach the writer while cache-hot
_GATHER_S = 0.005  # ... or this long after a batch's first message
_COPY_BELOW = 64 << 10  # mean message size under which frames are received as bytes
_POLL_MS = 100

Emit = Callable[[Batch, int], None]


class Companion(Protocol):
    """A control socket a client keeps next to its data socket, served from the poll loop."""

    def register(self, poller: zmq.Poller) -> None: ...

    def service(self, poller: zmq.Poller, events: dict) -> None: ...

    def close(self) -> None: ...


class Heartbeats:
    """The Open Ephys GUI counts a client as alive only while it heartbeats on port + 1."""

    def __init__(self, ctx: zmq.Context, data_endpoint: str):
        self.client = HeartbeatClient(ctx, data_endpoint, application="zmq-recorder")

    def register(self, poller: zmq.Poller) -> None:
        poller.register(self.client.socket, zmq.POLLIN)

    def service(self, poller: zmq.Poller, events: dict) -> None:
        now = time.monotonic()
        sock = self.client.socket
        if events.get(sock):
            self.client.on_readable(now)
        if self.client.tick(now):  # the REQ socket was replaced (lazy pirate)
            with contextlib.suppress(KeyError):
                poller.unregister(sock)
            self.register(poller)

    def close(self) -> None:
        self.client.close()


#: control plane named by a protocol descriptor -> what a recording keeps alive for it
COMPANIONS: dict[str, Callable[[zmq.Context, str], Companion]] = {HEARTBEAT: Heartbeats}


def stream_loop(
    sock: zmq.Socket,
    emit: Emit,
    stop: threading.Event,
    remaining: Callable[[], int | None],
    companions: list[Companion],
    more_companions: Callable[[], list[Companion]] = list,
    polling: Callable[[], None] | None = None,
    frames_as_bytes: bool = True,
) -> None:
    """SUB or PULL: take everything that arrives, in batches.

    A batch is handed over when full (`_DRAIN` messages or `_DRAIN_BYTES`) or `_GATHER_S`
    after its first message: a source that sends a few messages at a time (a GUI pacing its
    blocks) would otherwise cost a hand-over, and the writer a batch, per few messages. Each
    arrival still wakes the loop, so every message is stamped when it arrives (a loop asleep
    while gathering would stamp a whole batch at once: replay would send it as one burst).

    `more_companions()` is asked on every wake-up for control sockets that became due later
    (`--protocol auto` learns from the first messages which protocol, and so which control
    planes, it talks to). `polling()` is called before each wait with nothing held: everything
    received before it has been handed to `emit` (the recording's runs use that to know time
    has passed). `frames_as_bytes=False` hands every frame over as the zmq.Frame it came in,
    for an `emit` that copies the batch away at once (the receive process, into shared memory).
    """
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    for c in companions:
        c.register(poller)
    # recv_multipart by hand: each frame is received as a zmq.Frame, whose `more` says if the
    # message goes on (socket.get(RCVMORE) converts its option to an enum on every call: 1.5 us
    # a frame, a sixth of a receive process's time on Open Ephys' small messages), and small
    # ones are copied into bytes at once (Frame.bytes): 9 -> 6.5 us a three-frame message
    recv = sock.recv
    copy = False  # zero-copy for large frames; small ones are cheaper copied into bytes
    batch: Batch = []
    nbytes = 0
    due = 0.0  # when the batch held must be handed over
    while not stop.is_set():
        for c in more_companions():
            companions.append(c)
            c.register(poller)
        if batch:
            wait_ms = max(0, math.ceil((due - time.monotonic()) * 1000))
        else:
            wait_ms = _POLL_MS
            if polling is not None:
                polling()
        events = dict(poller.poll(wait_ms))
        for c in companions:
            c.service(poller, events)
        left = remaining()
        limit = _DRAIN if left is None else min(_DRAIN, left)
        if events.get(sock):
            if not batch:
                due = time.monotonic() + _GATHER_S
            while len(batch) < limit and nbytes < _DRAIN_BYTES:
                try:
                    frame = recv(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                frames = [frame.bytes if copy else frame]
                while frame.more:  # the rest of a message has arrived with its first frame
                    frame = recv(zmq.NOBLOCK, copy=False)
                    frames.append(frame.bytes if copy else frame)
                batch.append((time.time_ns(), frames, None))
                nbytes += sum(map(len, frames))
        if batch and (len(batch) >= limit or nbytes >= _DRAIN_BYTES or time.monotonic() >= due):
            copy = frames_as_bytes and nbytes < _COPY_BELOW * len(batch)
            emit(batch, nbytes)
            batch, nbytes = [], 0
            left = remaining()
        if left is not None and left <= 0:
            return
    if batch:  # stopped while gathering: what was received is recorded
        emit(batch, nbytes)


def request_loop(
    sock: zmq.Socket,
    request: bytes,
    emit: Emit,
    stop: threading.Event,
    remaining: Callable[[], int | None],
) -> None:
    """REQ: ask for the next message (`next` for the Karabo bridge), record the reply."""
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    while not stop.is_set():
        sock.send(request)
        while not stop.is_set() and not poller.poll(_POLL_MS):
            pass
        if stop.is_set():
            return
        frames = sock.recv_multipart(copy=False)
        emit([(time.time_ns(), frames, None)], sum(map(len, frames)))
        left = remaining()
        if left is not None and left <= 0:
            return


def proxy_loop(
    front: zmq.Socket,
    back: zmq.Socket,
    emit: Emit,
    stop: threading.Event,
    remaining: Callable[[], int | None],
) -> None:
    """ROUTER (clients) <-> DEALER (the service): every request goes on with its envelope, the
    REP service sends the envelope back with the reply, and each completed exchange is recorded
    as one pair. Payloads are forwarded as opaque bytes, never decoded (often pickles)."""
    poller = zmq.Poller()
    poller.register(front, zmq.POLLIN)
    poller.register(back, zmq.POLLIN)
    pending: dict[bytes, tuple[int, list]] = {}  # envelope -> (request time, request frames)
    try:
        while not stop.is_set():
            events = dict(poller.poll(_POLL_MS))
            if events.get(front):
                msg = front.recv_multipart()
                envelope, body = _split_envelope(msg)
                pending[envelope] = (time.time_ns(), body)
                back.send_multipart(msg)
            if events.get(back):
                msg = back.recv_multipart()
                now = time.time_ns()
                front.send_multipart(msg)
                envelope, reply = _split_envelope(msg)
                asked = pending.pop(envelope, None)
                if asked is None:
                    continue  # a reply to nobody we saw: the service misbehaved; not ours
                t_req, request = asked
                frames = pack_pair(request, reply)
                extra: dict[str, ColumnValue] = {"request_ns": t_req, "latency_ns": now - t_req}
                emit([(now, frames, extra)], sum(map(len, frames)))
                left = remaining()
                if left is not None and left <= 0:
                    return
    finally:
        # Asked but never answered: keep the question. Stamped now, when it is known to be
        # unanswered, so receive times stay in order; `request_ns` says when it was asked.
        now = time.time_ns()
        for t_req, request in pending.values():
            emit([(now, pack_pair(request, []), {"request_ns": t_req})], 0)


def _split_envelope(msg: list[bytes]) -> tuple[bytes, list[bytes]]:
    """ROUTER messages are [identity..., b'', body...]."""
    try:
        cut = msg.index(b"")
    except ValueError:
        return b"", msg
    return b"\x00".join(msg[:cut]), msg[cut + 1 :]
