"""Receiving in a process of its own, for streams of many small messages (Open Ephys).

Why: every `recv` gives the GIL up and must win it back from the writer thread. At tens of
thousands of messages a second those hand-overs, not decoding, bound a recording: three per
Open Ephys message (one per frame), measured with py-spy and strace (docs/recording.md). A
child process receives under its own GIL, with the same loop and the same socket setup as the
receive thread (`stream_loop`), and hands the parent one packed batch per wake-up (up to 512
messages or 2 MiB): the parent takes one hand-over per batch instead of three per message.

The child is forked from the recording's receive thread, so it needs no imports and starts in
milliseconds; it touches only the sockets it makes itself. It ends when told (`stop`, or a
SIGTERM), when its count is reached, or when its parent is gone (checked every wake-up), never
by Ctrl-C: the parent stops it so nothing received is lost.

Wire between the two, a PAIR over ipc (one direction each way, order kept):

* child -> parent ``[b"R", endpoint]`` sockets open; ``[b"X", b"usage" or b"", message]``
  they could not be opened (the parent raises a UsageError, or a ReceiveProcessError for
  anything else); ``[b"B", drops, recv_ns, frame counts, frame lengths, payload]`` a batch
  (int64 / uint32 / uint64 arrays, the frames one after the other: `pack`);
  ``[b"S", drops, recv_ns, frame counts, frame lengths, slot, offset and size]`` the same
  batch with its frames in a slot of the shared ring (slot_ring.py; three uint64);
  ``[b"T", drops, ns]`` before each wait: everything received before `ns` has been sent;
  ``[b"E", drops, failure]`` the end (`failure`: empty, or the error that ended the loop).
  `drops`: messages the child received but could not pass on because the pipe was full (the
  parent a whole pipe behind): counted as received and dropped, like a full queue's.
* parent -> child ``b"stop"``; ``b"F" + slots`` (uint32) slots the parent is done with.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import shutil
import signal
import tempfile
import threading
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from itertools import accumulate, islice, repeat
from typing import Any, overload

import zmq

from recorder.contracts import Batch, Received
from recorder.errors import RecorderError, UsageError
from recorder.recording.receive import Companion, stream_loop
from recorder.recording.slot_ring import SlotRing

_PIPE_HWM = 256  # batches in flight between the processes (at most 2 MiB each)
_READY_S = 10.0  # as long as `StreamRecorder.open` waits for any socket
_POLL_MS = 100
_END_LINGER_MS = 30_000  # the parent takes what is on the pipe at once (its zmq I/O thread)
_SLOT_BYTES = 4 << 20  # a batch of small messages fits one (receive.py ends it past 2 MiB)
_SLOTS = 256  # 1 GiB of address space, as much as the queue holds; memory only for slots in use
# slots that keep their pages when freed: a backlog this deep reuses them without page faults
# (4.7 us a message when every slot had to be faulted in again), and at most this much shared
# memory stays with the recording after a backlog drained
_WARM_SLOTS = 64
_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter: free heap top kept before it is handed back
_KEPT_HEAP = 64 << 20

EmitPacked = Callable[[Sequence[Received], int], None]
"""Where the parent hands each batch (a PackedBatch) and its bytes."""

OpenSockets = Callable[[zmq.Context], tuple[zmq.Socket, str, list[Companion]]]
"""In the child: open the data socket like the system's clients -> (socket, endpoint it is
bound to or connected to, control sockets to keep alive)."""


PackedParts = list[Any]
"""A packed batch's four buffers as `pack` makes them (zmq.Frame, memoryview or bytes)."""


class ReceiveProcessError(RecorderError):
    """The receive process ended before it said so: killed, or failed."""


class _Control:
    """The child's end of the pipe, served from the receive loop's poller: a stop from the
    parent, or the parent gone, ends the loop; slots the parent gave back are free again."""

    def __init__(self, pipe: zmq.Socket, stop: threading.Event, parent: int, ring: SlotRing):
        self.pipe, self.stop, self.parent, self.ring = pipe, stop, parent, ring
        self.orphaned = False

    def register(self, poller: zmq.Poller) -> None:
        poller.register(self.pipe, zmq.POLLIN)

    def service(self, poller: zmq.Poller, events: dict) -> None:
        while events.get(self.pipe):
            try:
                said = self.pipe.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            if said[:1] == b"F":
                self.ring.returned(said[1:])
            else:
                self.stop.set()
        if os.getppid() != self.parent:  # orphaned: the recording is gone, nobody to hand to
            self.orphaned = True
            self.stop.set()

    def close(self) -> None:
        pass


def _child(
    address: str, parent: int, open_sockets: OpenSockets, count: int | None, ring: SlotRing
) -> None:
    """The receive process: runs `stream_loop` and packs what it hands over."""
    _keep_freed_heap()
    stop = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us, after its last batch
    # asked to end (multiprocessing's exit handler, a service manager stopping the group):
    # as a stop, so the end message still tells the parent
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    ctx = zmq.Context()
    pipe = ctx.socket(zmq.PAIR)
    pipe.sndhwm = pipe.rcvhwm = _PIPE_HWM
    pipe.linger = _END_LINGER_MS  # the end and the last batches must reach the parent
    pipe.connect(address)
    try:
        sock, endpoint, companions = open_sockets(ctx)
    except Exception as exc:  # said to the parent, which raises it where the thread would
        usage = isinstance(exc, UsageError)
        pipe.send_multipart([b"X", b"usage" if usage else b"", str(exc).encode()])
        pipe.close()
        ctx.term()
        return
    pipe.send_multipart([b"R", endpoint.encode()])
    taken = 0  # messages received, passed on or dropped
    drops = [0]  # dropped since the last message that told the parent

    def told() -> bytes:
        n, drops[0] = drops[0], 0
        return n.to_bytes(8, "little")

    def emit(batch: Batch, nbytes: int) -> None:
        nonlocal taken
        taken += len(batch)
        heads, frames = pack_heads(batch)
        placed = ring.put(frames, nbytes)
        parts: list[Any]
        if placed is None:
            parts = [b"B", told(), *heads, b"".join(frames)]
        else:
            parts = [b"S", told(), *heads, array("Q", [*placed, nbytes])]
        try:
            pipe.send_multipart(parts, flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:  # the parent is a whole pipe behind: count, as a full queue does
            drops[0] += len(batch) + int.from_bytes(parts[1], "little")
            if placed is not None:
                ring.unput()
            return
        if placed is None:  # the parent takes this batch as the end of the slot it last saw
            ring.seal()

    def polling() -> None:
        now, drops_told = time.time_ns(), told()
        try:
            pipe.send_multipart([b"T", drops_told, now.to_bytes(8, "little")], flags=zmq.NOBLOCK)
        except zmq.Again:  # a full pipe: the next message tells them
            drops[0] += int.from_bytes(drops_told, "little")

    def remaining() -> int | None:
        return None if count is None else count - taken

    control = _Control(pipe, stop, parent, ring)
    failure = b""
    try:
        # frames as received: emit copies them into a slot at once (slot_ring.py)
        stream_loop(
            sock,
            emit,
            stop,
            remaining,
            [control, *companions],
            polling=polling,
            frames_as_bytes=False,
        )
    except Exception as exc:  # the parent fails the recording with it, as the thread's would
        failure = f"{type(exc).__name__}: {exc}".encode()
    finally:
        sock.close()
        for c in companions:
            c.close()
        end = [b"E", told(), failure]
        while not control.orphaned:  # a full pipe drains while the parent lives
            try:
                pipe.send_multipart(end, flags=zmq.NOBLOCK)
                break
            except zmq.Again:
                time.sleep(0.05)
                control.orphaned = os.getppid() != parent
        pipe.close(linger=0 if control.orphaned else None)
        ctx.term()


def _keep_freed_heap() -> None:
    """glibc gives the top of the heap back to the system once 128 KiB of it are free: here
    after every batch, whose received frames then fault their pages in again in the next one.
    The receive process keeps up to _KEPT_HEAP of it: its faults in a 40k-message Open Ephys
    round went from 21-30k to 8-15k (one per page, a few microseconds each on a VM)."""
    with contextlib.suppress(OSError, AttributeError):  # another C library: no mallopt
        ctypes.CDLL(None).mallopt(_M_TRIM_THRESHOLD, _KEPT_HEAP)


class ReceiveProcess:
    """The parent's side: start the child, then `run` hands its batches to `emit`."""

    def __init__(self, ctx: zmq.Context, name: str, open_sockets: OpenSockets, count: int | None):
        self._dir = tempfile.mkdtemp(prefix="rx-")
        address = f"ipc://{self._dir}/pipe"
        self.pipe = ctx.socket(zmq.PAIR)
        self.pipe.sndhwm = self.pipe.rcvhwm = _PIPE_HWM
        self.pipe.linger = 0
        self.pipe.bind(address)
        self.ring = SlotRing(_SLOTS, _SLOT_BYTES, _WARM_SLOTS)  # before the fork: shared
        fork = multiprocessing.get_context("fork")
        self.proc = fork.Process(
            target=_child,
            args=(address, os.getpid(), open_sockets, count, self.ring),
            name=f"rx-{name}",
            daemon=True,
        )
        self.proc.start()
        self.endpoint = self._ready()

    def _ready(self) -> str:
        deadline = time.monotonic() + _READY_S
        while not self.pipe.poll(_POLL_MS):
            if not self.proc.is_alive() or time.monotonic() > deadline:
                self.close()
                raise ReceiveProcessError(
                    "the receive process did not open its sockets "
                    + ("in time" if self.proc.is_alive() else f"(exit code {self.proc.exitcode})")
                )
        kind, *said = self.pipe.recv_multipart()
        if kind == b"X":
            self.close()
            usage, text = said
            raise (UsageError if usage else ReceiveProcessError)(text.decode())
        return said[0].decode()

    def run(
        self,
        emit: EmitPacked,
        stop: threading.Event,
        polled: Callable[[int], None],
        dropped: Callable[[int], None],
    ) -> None:
        """Until the child's end: each batch to `emit`, each tick to `polled`. A stop is
        passed on to the child; the batches it sent before it ended are still handed over."""
        pipe, asked, ring = self.pipe, False, self.ring
        freed = b""  # slots given back, not yet told the child
        try:
            while True:
                if stop.is_set() and not asked:
                    try:  # a child that has ended reads no more: its end is on the pipe
                        pipe.send(b"stop", zmq.NOBLOCK)
                        asked = True
                    except zmq.Again:
                        pass
                freed += ring.give_back()
                if freed:
                    try:  # kept for the next turn when the pipe is full (or the child gone)
                        pipe.send(b"F" + freed, zmq.NOBLOCK)
                        freed = b""
                    except zmq.Again:
                        pass
                if not pipe.poll(_POLL_MS):
                    if not self.proc.is_alive() and not pipe.poll(0):
                        raise ReceiveProcessError(
                            f"the receive process ended with exit code {self.proc.exitcode}"
                        )
                    continue
                parts = pipe.recv_multipart(copy=False)
                kind = parts[0].bytes
                drops = int.from_bytes(parts[1].bytes, "little")
                if drops:
                    dropped(drops)
                if kind == b"B":
                    ring.sealed()
                    batch = PackedBatch([p.buffer for p in parts[2:]])
                    emit(batch, batch.nbytes)
                elif kind == b"S":
                    slot, at, size = memoryview(parts[5].buffer).cast("Q")
                    batch = PackedBatch(
                        [*(p.buffer for p in parts[2:5]), ring.view(slot, at, size)]
                    )
                    emit(batch, batch.nbytes)
                elif kind == b"T":
                    polled(int.from_bytes(parts[2].bytes, "little"))
                elif kind == b"E":
                    if parts[2].bytes:
                        raise ReceiveProcessError(
                            f"the receive process failed: {parts[2].bytes.decode(errors='replace')}"
                        )
                    return
        finally:
            self.close()

    def close(self) -> None:
        self.pipe.close(linger=0)
        self.proc.join(_READY_S)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        shutil.rmtree(self._dir, ignore_errors=True)


def pack(batch: Batch) -> list[Any]:
    """A batch as four buffers: receive times, frames per message, frame lengths, the frames
    one after the other (one copy of the bytes, no Python object per message on the wire)."""
    heads, frames = pack_heads(batch)
    return [*heads, b"".join(frames)]


def pack_heads(batch: Batch) -> tuple[list[array], list[Any]]:
    """`pack`'s first three buffers, and the frames its fourth joins (for a copy elsewhere)."""
    frames = [f for _, msg, _ in batch for f in msg]
    heads = [
        array("q", [m[0] for m in batch]),
        array("I", [len(m[1]) for m in batch]),
        array("Q", map(len, frames)),
    ]
    return heads, frames


class PackedBatch(Sequence[Received]):
    """A batch as it came off the pipe, unpacked when first read (the writer takes it, or a
    live view looks into it). A writer that fell behind queues these, not five Python objects
    per message that every full pass of the garbage collector walks (recording/collector.py).
    The last message, which the receive side keeps as `latest`, is built on its own."""

    __slots__ = ("_count", "_messages", "_parts", "nbytes")

    def __init__(self, parts: PackedParts):
        self._parts: PackedParts | None = parts
        self._messages: Batch | None = None
        self._count = memoryview(parts[0]).nbytes // 8  # one int64 receive time per message
        self.nbytes = memoryview(parts[3]).nbytes

    def __len__(self) -> int:
        return self._count

    def messages(self) -> Batch:
        """The batch unpacked (once, but for two threads asking at the same moment: the
        writer and a live view; either list holds the same views)."""
        parts = self._parts  # read before the list: it is set before the parts are dropped
        messages = self._messages
        if messages is None:
            assert parts is not None
            messages, _ = unpack(parts)
            self._messages = messages
            self._parts = None  # the views hold the buffers
        return messages

    @overload
    def __getitem__(self, i: int) -> Received: ...
    @overload
    def __getitem__(self, i: slice) -> Batch: ...
    def __getitem__(self, i: int | slice) -> Received | Batch:
        parts = self._parts
        if parts is not None and isinstance(i, int) and i in (-1, self._count - 1):
            return _last(parts)
        return self.messages()[i]

    def __iter__(self) -> Iterator[Received]:
        return iter(self.messages())


def _last(parts: PackedParts) -> Received:
    """The last message of a packed batch, without unpacking the others."""
    ns = memoryview(parts[0]).cast("q")
    counts = memoryview(parts[1]).cast("I")
    lengths = memoryview(parts[2]).cast("Q")
    data = memoryview(parts[3])
    own = lengths[len(lengths) - counts[-1] :].tolist()
    at = data.nbytes - sum(own)
    frames = []
    for n in own:
        frames.append(data[at : at + n])
        at += n
    return ns[-1], frames, None


def unpack(parts: PackedParts) -> tuple[Batch, int]:
    """A packed batch back into (recv_ns, frames, None) tuples, each frame a view of the
    payload: no copy, and no small allocation per frame (4 KiB bytes objects held while the
    writer catches up grow the heap a page at a time, a system call each)."""
    ns = memoryview(parts[0]).cast("q").tolist()
    counts = memoryview(parts[1]).cast("I").tolist()
    lengths = memoryview(parts[2]).cast("Q").tolist()
    data = memoryview(parts[3])
    nbytes = data.nbytes
    ends = list(accumulate(lengths))
    flat = [data[a:b] for a, b in zip([0, *ends[:-1]], ends)]  # noqa: B905 (one shorter)
    first = counts[0] if counts else 0
    if counts.count(first) == len(counts):
        groups = [flat[i : i + first] for i in range(0, len(flat), first)]
    else:
        it = iter(flat)
        groups = [list(islice(it, c)) for c in counts]
    return list(zip(ns, groups, repeat(None))), nbytes
