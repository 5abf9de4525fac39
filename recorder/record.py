"""The recorder worker: sockets -> receive thread -> bounded queue -> writer thread -> run store.

Receiving and writing are separate threads so a slow disk never stalls the socket; a batch that
does not fit the queue is dropped and counted. Each stream has its own pair of threads and its own
zarr group, so streams never wait for each other.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import zmq

from recorder.byte_queue import ByteBoundedQueue
from recorder.endpoints import check_endpoint
from recorder.errors import MalformedMessage, RecorderError, UsageError
from recorder.protocols import codec_for
from recorder.store import layout
from recorder.store.run_writer import RunWriter
from recorder.store.stream_writer import StreamWriter

SOCKET_TYPES = {"SUB": zmq.SUB, "PULL": zmq.PULL, "REQ": zmq.REQ}
_DRAIN = 512  # messages taken per wake-up before handing a batch to the writer
_DRAIN_BYTES = 2 << 20  # ... or this many bytes: large frames reach the writer while cache-hot
_COPY_BELOW = 64 << 10  # mean message size under which frames are received as bytes


@dataclass
class SourceSpec:
    """One endpoint to record, as the user described it."""

    endpoint: str
    socket_type: str = "SUB"
    bind: bool = False
    subscribe: list[bytes] = field(default_factory=list)
    request: bytes = b"next"
    protocol: str = "raw"
    stream: str = "main"

    def check(self) -> SourceSpec:
        self.socket_type = self.socket_type.upper()
        if self.socket_type not in SOCKET_TYPES:
            raise UsageError(
                f"unknown socket type {self.socket_type!r} (use {', '.join(SOCKET_TYPES)})"
            )
        if self.bind and self.socket_type == "REQ":
            raise UsageError("a REQ recorder connects to the server; --bind is for SUB and PULL")
        if self.subscribe and self.socket_type != "SUB":
            raise UsageError("--subscribe only applies to SUB sockets")
        check_endpoint(self.endpoint, bind=self.bind)
        layout.check_name("stream name", self.stream)
        codec_for(self.protocol)
        return self


@dataclass
class StreamCounters:
    received: int = 0
    received_bytes: int = 0
    dropped: int = 0
    written: int = 0
    done: bool = False


class StreamRecorder:
    """Receive and write one stream; `start()`, then `stop()` and `join()`."""

    def __init__(
        self,
        ctx: zmq.Context,
        spec: SourceSpec,
        writer: StreamWriter,
        *,
        count: int | None,
        flush_interval: float,
        queue_bytes: int,
        on_fatal: Callable[[BaseException], None],
    ):
        self.ctx, self.spec, self.writer = ctx, spec, writer
        self.count = count
        self.flush_interval = flush_interval
        self.queue = ByteBoundedQueue(queue_bytes)
        self.counters = StreamCounters()
        self.codec = codec_for(spec.protocol)
        self._stop = threading.Event()
        self._on_fatal = on_fatal
        self._socket_ready = threading.Event()
        self._socket_error: BaseException | None = None
        self.bound_endpoint: str | None = None
        self._rx = threading.Thread(target=self._receive, name=f"rx-{spec.stream}", daemon=True)
        self._wx = threading.Thread(target=self._write, name=f"wx-{spec.stream}", daemon=True)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self._rx.start()
        self._socket_ready.wait(10)
        if self._socket_error is not None:
            raise self._socket_error
        self._wx.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        self._rx.join(timeout)
        if self._wx.is_alive() or self._wx.ident:
            self._wx.join(timeout)

    @property
    def finished(self) -> bool:
        return self.counters.done

    # -- receive thread ------------------------------------------------------------------------

    def _open_socket(self) -> zmq.Socket:
        spec = self.spec
        sock = self.ctx.socket(SOCKET_TYPES[spec.socket_type])
        sock.linger = 0
        sock.rcvhwm = 0 if spec.socket_type != "SUB" else 100_000
        if spec.socket_type == "SUB":
            for prefix in spec.subscribe or [b""]:
                sock.setsockopt(zmq.SUBSCRIBE, prefix)
        try:
            if spec.bind:
                sock.bind(spec.endpoint)
                self.bound_endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
            else:
                sock.connect(spec.endpoint)
                self.bound_endpoint = spec.endpoint
        except zmq.ZMQError as exc:
            sock.close()
            verb = "bind" if spec.bind else "connect"
            raise UsageError(f"cannot {verb} {spec.endpoint}: {exc}") from exc
        return sock

    def _receive(self) -> None:
        try:
            sock = self._open_socket()
        except BaseException as exc:
            self._socket_error = exc
            self._socket_ready.set()
            self.counters.done = True
            self.queue.close()
            return
        self._socket_ready.set()
        try:
            if self.spec.socket_type == "REQ":
                self._receive_replies(sock)
            else:
                self._receive_stream(sock)
        except BaseException as exc:
            self._on_fatal(exc)
        finally:
            sock.close(linger=0)
            self.counters.done = True
            self.queue.close()

    def _hand_over(self, batch: list, nbytes: int) -> None:
        if not batch:
            return
        if not self.queue.offer(batch, nbytes):
            self.counters.dropped += len(batch)

    def _left(self) -> int | None:
        return None if self.count is None else self.count - self.counters.received

    def _receive_stream(self, sock: zmq.Socket) -> None:
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        c = self.counters
        recv = sock.recv_multipart
        copy = False  # zero-copy for large frames; small ones are cheaper copied into bytes
        while not self._stop.is_set():
            if not poller.poll(100):
                continue
            batch, nbytes = [], 0
            limit = _DRAIN if self.count is None else min(_DRAIN, self._left())
            for _ in range(limit):
                try:
                    frames = recv(zmq.NOBLOCK, copy=copy)
                except zmq.Again:
                    break
                batch.append((time.time_ns(), frames))
                nbytes += sum(map(len, frames))
                if nbytes >= _DRAIN_BYTES:
                    break
            if batch:
                copy = nbytes < _COPY_BELOW * len(batch)
            c.received += len(batch)
            c.received_bytes += nbytes
            self._hand_over(batch, nbytes)
            if self.count is not None and c.received >= self.count:
                return

    def _receive_replies(self, sock: zmq.Socket) -> None:
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        c = self.counters
        while not self._stop.is_set():
            sock.send(self.spec.request)
            while not self._stop.is_set() and not poller.poll(100):
                pass
            if self._stop.is_set():
                return
            frames = sock.recv_multipart(copy=False)
            now = time.time_ns()
            size = sum(len(f) for f in frames)
            c.received += 1
            c.received_bytes += size
            self._hand_over([(now, frames)], size)
            if self.count is not None and c.received >= self.count:
                return

    # -- writer thread -------------------------------------------------------------------------

    def _write(self) -> None:
        next_flush = time.monotonic() + self.flush_interval
        try:
            while True:
                batch = self.queue.take(0.05)
                if batch:
                    self._write_batch(batch)
                dropped = self.counters.dropped - self.writer.drops
                if dropped:
                    self.writer.add_drops(dropped)
                if time.monotonic() >= next_flush:
                    self.writer.flush()
                    next_flush = time.monotonic() + self.flush_interval
                if batch is None and self.queue.drained:
                    break
            self.writer.flush()
        except BaseException as exc:
            self._stop.set()
            self._on_fatal(exc)

    def _write_batch(self, batch: list) -> None:
        items = []
        decode = self.codec.decode
        for recv_ns, frames in batch:
            if not isinstance(frames[0], bytes):
                frames = [f.buffer for f in frames]
            try:
                items.append((recv_ns, frames, decode(frames), None))
            except MalformedMessage as exc:
                items.append((recv_ns, frames, None, exc.reason))
        self.writer.append_batch(items)
        self.counters.written += len(batch)


class Recording:
    """One run being recorded from one or more sources. The CLI and the manager drive this."""

    def __init__(
        self,
        runs_dir: Path,
        sources: list[SourceSpec],
        *,
        name: str = "",
        tags: list[str] | None = None,
        count: int | None = None,
        duration: float | None = None,
        flush_interval: float = 1.0,
        queue_bytes: int = 1 << 30,
    ):
        if not sources:
            raise UsageError("nothing to record: give at least one endpoint")
        names = [s.check().stream for s in sources]
        if len(set(names)) != len(names):
            raise UsageError("two sources have the same stream name")
        if count is not None and count <= 0:
            raise UsageError("--count must be positive")
        if duration is not None and duration <= 0:
            raise UsageError("--duration must be positive")
        if flush_interval <= 0:
            raise UsageError("--flush-interval must be positive")
        self.sources = sources
        self.duration = duration
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self.ctx = zmq.Context()
        self.run = RunWriter(runs_dir, name=name, tags=tags)
        self.streams: list[StreamRecorder] = []
        for spec in sources:
            writer = self.run.add_stream(
                spec.stream,
                protocol=spec.protocol,
                endpoint=spec.endpoint,
                socket_type=spec.socket_type,
                role="bind" if spec.bind else "connect",
                options={
                    "subscribe": [p.decode("latin-1") for p in spec.subscribe],
                    "request": spec.request.decode("latin-1")
                    if spec.socket_type == "REQ"
                    else None,
                },
            )
            self.streams.append(
                StreamRecorder(
                    self.ctx,
                    spec,
                    writer,
                    count=count,
                    flush_interval=flush_interval,
                    queue_bytes=queue_bytes,
                    on_fatal=self._fatal,
                )
            )
        self.started = time.monotonic()

    @property
    def run_id(self) -> str:
        return self.run.run_id

    def start(self) -> None:
        try:
            for s in self.streams:
                s.start()
        except BaseException as exc:
            self._fatal(exc)
            self.finish()
            raise
        self.started = time.monotonic()

    def _fatal(self, exc: BaseException) -> None:
        with self._lock:
            if self.error is None:
                self.error = exc
        for s in self.streams:
            s.stop()

    def stop(self) -> None:
        for s in self.streams:
            s.stop()

    @property
    def done(self) -> bool:
        if self.duration is not None and time.monotonic() - self.started >= self.duration:
            self.stop()
        return all(s.finished for s in self.streams) or self.error is not None

    def wait(self, poll: float = 0.1, on_tick: Callable[[Recording], None] | None = None) -> None:
        while not self.done:
            time.sleep(poll)
            if on_tick:
                on_tick(self)

    def finish(self) -> str:
        """Stop, drain, flush and close the run; returns its final status."""
        self.stop()
        for s in self.streams:
            s.join()
        if self.error is None:
            self.run.close(layout.STATUS_COMPLETE)
        else:
            self.run.close(layout.STATUS_FAILED, describe_error(self.error))
        self.ctx.term()
        return self.run.status

    def stats(self) -> dict:
        totals = {"messages": 0, "bytes": 0, "drops": 0, "gaps": 0, "queue_bytes": 0}
        for s in self.streams:
            totals["messages"] += s.counters.received
            totals["bytes"] += s.counters.received_bytes
            totals["drops"] += s.counters.dropped
            totals["gaps"] += s.writer.gaps.missing
            totals["queue_bytes"] += s.queue.depth_bytes
        totals["elapsed_s"] = time.monotonic() - self.started
        return totals


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, RecorderError):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror} ({exc.filename or type(exc).__name__})"
    return f"{type(exc).__name__}: {exc}"
