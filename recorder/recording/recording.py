"""The recorder worker: sockets -> receive thread -> bounded queue -> writer thread -> run store.

Receiving and writing are separate threads so a slow disk never stalls the socket; a batch that
does not fit the queue is dropped and counted. Each stream has its own pair of threads and its own
zarr group, so streams never wait for each other.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import zmq

from recorder import protocols
from recorder.contracts import Batch, RecordingStats
from recorder.errors import RecorderError, UsageError
from recorder.limits import check_recording
from recorder.protocols import codec_for
from recorder.protocols.base import decode_batch
from recorder.protocols.detect import detect_protocol
from recorder.recording.byte_queue import ByteBoundedQueue
from recorder.recording.receive import (
    COMPANIONS,
    Companion,
    proxy_loop,
    request_loop,
    stream_loop,
)
from recorder.recording.source_spec import AUTO, SILENT_WARNING_S, SourceSpec
from recorder.store import layout

if TYPE_CHECKING:  # the store (zarr) is imported once the sockets are open: see Recording.start
    from recorder.store.run_writer import RunWriter
    from recorder.store.stream_writer import StreamWriter

__all__ = [
    "SILENT_WARNING_S",
    "Recording",
    "SourceSpec",
    "StreamRecorder",
    "describe_error",
    "silence_warning",
]

_ZMQ_TYPES = {"SUB": zmq.SUB, "PULL": zmq.PULL, "REQ": zmq.REQ}
_AUTO_MESSAGES = 10  # messages looked at before choosing a protocol ...
_AUTO_SECONDS = 2.0  # ... or this long after the first one
_REPLY_LINGER_MS = 2000  # the proxy's last forwarded reply gets this long to reach its client


class StreamCounters:
    def __init__(self):
        self.received = 0
        self.received_bytes = 0
        self.dropped = 0
        self.written = 0
        self.done = False


def next_flush_after(deadline: float, interval: float, now: float | None = None) -> float:
    """The flush after the one due at `deadline`: on a fixed clock, so a message waits at most
    one interval plus one flush to be committed (scheduling from the end of a flush would add
    the flush's duration every time). Ticks missed while a slow flush ran are skipped."""
    now = time.monotonic() if now is None else now
    missed = max(0.0, (now - deadline) // interval)
    return deadline + (missed + 1) * interval


class StreamRecorder:
    """Receive and write one stream: `open()` (sockets up, messages queue), `write_to(writer)`,
    then `stop()` and `join()`."""

    writer: StreamWriter
    """Set by `write_to`, once the run exists."""

    def __init__(
        self,
        ctx: zmq.Context,
        spec: SourceSpec,
        *,
        count: int | None,
        flush_interval: float,
        queue_bytes: int,
        on_fatal: Callable[[BaseException], None],
    ):
        self.ctx, self.spec = ctx, spec
        self.count = count
        self.flush_interval = flush_interval
        self.queue = ByteBoundedQueue(queue_bytes)
        self.counters = StreamCounters()
        self.protocol = None if spec.protocol == AUTO else spec.protocol
        self.codec = codec_for(self.protocol) if self.protocol else None
        self._undecided: Batch = []  # auto: messages waiting for the protocol to be chosen
        self._first_undecided = 0.0
        self._stop = threading.Event()
        self._on_fatal = on_fatal
        self._socket_ready = threading.Event()
        self._socket_error: BaseException | None = None
        self.bound_endpoint: str | None = None
        self._rx = threading.Thread(target=self._receive, name=f"rx-{spec.stream}", daemon=True)
        self._wx = threading.Thread(target=self._write, name=f"wx-{spec.stream}", daemon=True)

    # -- lifecycle -----------------------------------------------------------------------------

    def open(self) -> BaseException | None:
        """Start receiving: the sockets are open when this returns (or the error that stopped
        them). What arrives waits in the queue until `write_to`."""
        self._rx.start()
        self._socket_ready.wait(10)
        return self._socket_error

    def write_to(self, writer: StreamWriter) -> None:
        self.writer = writer
        self._wx.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        if self._rx.ident:  # another stream's socket failed before this one was opened
            self._rx.join(timeout)
        if self._wx.ident:
            self._wx.join(timeout)

    @property
    def finished(self) -> bool:
        return self.counters.done

    @property
    def gaps(self) -> int:
        """Messages missing by sequence number (none known before the run exists)."""
        writer = getattr(self, "writer", None)
        return 0 if writer is None else writer.gaps.missing

    # -- receive thread ------------------------------------------------------------------------

    def _socket(self, kind: int, endpoint: str, bind: bool) -> zmq.Socket:
        sock = self.ctx.socket(kind)
        sock.linger = 0
        sock.rcvhwm = 100_000 if kind == zmq.SUB else 0
        try:
            if bind:
                sock.bind(endpoint)
            else:
                sock.connect(endpoint)
        except zmq.ZMQError as exc:
            sock.close()
            raise UsageError(f"cannot {'bind' if bind else 'connect'} {endpoint}: {exc}") from exc
        return sock

    def _open(self) -> tuple[list[zmq.Socket], Callable[[], None]]:
        """Open this source's sockets like the system's own clients; return them and the loop."""
        spec = self.spec
        remaining = self._remaining
        if spec.proxy:
            front = self._socket(zmq.ROUTER, spec.endpoint, bind=True)
            front.linger = _REPLY_LINGER_MS  # a reply sent just before closing still leaves
            self.bound_endpoint = front.getsockopt_string(zmq.LAST_ENDPOINT)
            assert spec.upstream, "SourceSpec.check() requires it of a proxy"
            try:
                back = self._socket(zmq.DEALER, spec.upstream, bind=False)
            except BaseException:
                front.close(linger=0)  # an open socket would keep ctx.term() waiting forever
                raise
            return [front, back], lambda: proxy_loop(front, back, self._emit, self._stop, remaining)
        socket_type = spec.socket_type or spec.default_socket()  # check() has set it
        sock = self._socket(_ZMQ_TYPES[socket_type], spec.endpoint, spec.bind)
        self.bound_endpoint = (
            sock.getsockopt_string(zmq.LAST_ENDPOINT) if spec.bind else spec.endpoint
        )
        if spec.socket_type == "SUB":
            for prefix in spec.subscribe or [b""]:
                sock.setsockopt(zmq.SUBSCRIBE, prefix)
        if spec.socket_type == "REQ":
            return [sock], lambda: request_loop(
                sock, spec.request, self._emit, self._stop, remaining
            )
        # a client that connects keeps the server's control planes alive, as its own clients do
        keep_alive = spec.heartbeat and not spec.bind

        def companions_of(protocol: str | None) -> list[Companion]:
            if not keep_alive or protocol is None:
                return []
            kinds = protocols.get(protocol).companions
            return [COMPANIONS[kind](self.ctx, spec.endpoint) for kind in kinds]

        companions = companions_of(self.protocol)
        undecided = [self.protocol is None]

        def detected_later() -> list[Companion]:
            # runs on the receive thread, which owns every socket it polls
            if not undecided[0] or self.protocol is None:
                return []
            undecided[0] = False
            return companions_of(self.protocol)

        def run():
            try:
                stream_loop(sock, self._emit, self._stop, remaining, companions, detected_later)
            finally:
                for c in companions:
                    c.close()

        return [sock], run

    def _remaining(self) -> int | None:
        return None if self.count is None else self.count - self.counters.received

    def _emit(self, batch: Batch, nbytes: int) -> None:
        c = self.counters
        c.received += len(batch)
        c.received_bytes += nbytes
        if not self.queue.offer(batch, nbytes):
            c.dropped += len(batch)

    def _receive(self) -> None:
        try:
            sockets, loop = self._open()
        except BaseException as exc:
            self._socket_error = exc
            self._socket_ready.set()
            self.counters.done = True
            self.queue.close()
            return
        self._socket_ready.set()
        try:
            loop()
        except BaseException as exc:  # reported to the recording, not swallowed
            self._on_fatal(exc)
        finally:
            for sock in sockets:
                sock.close()  # with each socket's own linger: 0 but for the proxy's clients
            self.counters.done = True
            self.queue.close()

    # -- writer thread -------------------------------------------------------------------------

    def _write(self) -> None:
        next_flush = time.monotonic() + self.flush_interval
        try:
            while True:
                batch = self.queue.take_joined(0.05)
                if batch:
                    self._write_batch(batch)
                elif self.codec is None and self._undecided:
                    self._decide_if_due()
                dropped = self.counters.dropped - self.writer.drops
                if dropped:
                    self.writer.add_drops(dropped)
                if time.monotonic() >= next_flush:
                    self.writer.flush()
                    next_flush = next_flush_after(next_flush, self.flush_interval)
                if batch is None and self.queue.drained:
                    break
            if self.codec is None and self._undecided:
                self._decide()
            self.writer.flush()
        except BaseException as exc:  # the recording decides what a failure means
            self._stop.set()
            self._on_fatal(exc)

    def _write_batch(self, batch: Batch) -> None:
        if self.codec is None:
            if not self._undecided:
                self._first_undecided = time.monotonic()
            self._undecided.extend(batch)
            self._decide_if_due()
            return
        codec = self.codec
        received = [
            (recv_ns, frames if isinstance(frames[0], bytes) else [f.buffer for f in frames], extra)
            for recv_ns, frames, extra in batch
        ]
        for part in decode_batch(codec, received):  # runs of one layout decoded together
            if isinstance(part, list):
                self.writer.append_batch(part)
            else:
                self.writer.append_run(*part)
        self.counters.written += len(batch)

    def _decide_if_due(self) -> None:
        late = time.monotonic() - self._first_undecided >= _AUTO_SECONDS
        if len(self._undecided) >= _AUTO_MESSAGES or late:
            self._decide()

    def _decide(self) -> None:
        """`--protocol auto`: pick the protocol the first messages fit; the run says which."""
        sample = [
            [f if isinstance(f, bytes) else f.bytes for f in frames]
            for _, frames, _ in self._undecided[:_AUTO_MESSAGES]
        ]
        self.protocol = detect_protocol(sample)
        self.codec = codec_for(self.protocol)
        self.writer.attrs["protocol"] = self.protocol
        self.writer.attrs["protocol_detected"] = True
        pending, self._undecided = self._undecided, []
        self._write_batch(pending)


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
        run_id: str | None = None,
        silent_warning_s: float | None = SILENT_WARNING_S,
    ):
        if not sources:
            raise UsageError("nothing to record: give at least one endpoint")
        names = [s.check().stream for s in sources]
        if len(set(names)) != len(names):
            raise UsageError("two sources have the same stream name")
        check_recording(count=count, duration=duration, flush_interval=flush_interval)
        self.sources = sources
        self.duration = duration
        self.silent_warning_s = silent_warning_s
        self.warnings: list[str] = []
        """Said once each, for the user: e.g. a source that has sent nothing (`silence_warning`)."""
        self._silence_checked = False
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self.ctx = zmq.Context()
        self._runs_dir, self._run_id, self._name, self._tags = runs_dir, run_id, name, tags
        self._run: RunWriter | None = None
        self.streams = [
            StreamRecorder(
                self.ctx,
                spec,
                count=count,
                flush_interval=flush_interval,
                queue_bytes=queue_bytes,
                on_fatal=self._fatal,
            )
            for spec in sources
        ]
        self.started = time.monotonic()

    @property
    def run(self) -> RunWriter:
        """The run being written: created by `start()` once the sockets are open, or here if
        asked for earlier (then before them, as a caller that wants it first expects)."""
        if self._run is None:
            self._run = self._create_run()
        return self._run

    def _create_run(self) -> RunWriter:
        from recorder.store.run_writer import RunWriter

        run = RunWriter(self._runs_dir, run_id=self._run_id, name=self._name, tags=self._tags)
        for spec in self.sources:
            run.add_stream(
                spec.stream,
                protocol=spec.protocol,
                endpoint=spec.endpoint,
                socket_type=spec.socket_type or spec.default_socket(),  # check() has set it
                role=spec.role,
                options=spec.options(),
                compression=spec.compression,
            )
        return run

    @property
    def created(self) -> bool:
        """Whether the run exists (it does once `start()` has opened the sockets)."""
        return self._run is not None

    @property
    def run_id(self) -> str:
        return self.run.run_id

    def start(self) -> None:
        """Open every source's sockets first, then the run: a source that sends as soon as it
        sees us (a PUB that waits for subscribers) is heard while zarr is still loading, its
        messages queued. The run is created even when a socket fails, and closed as failed."""
        try:
            error = None
            for s in self.streams:
                error = s.open()
                if error is not None:
                    break
            run = self.run
            if error is not None:
                raise error
            for s in self.streams:
                s.write_to(run.streams[s.spec.stream])
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
        self._check_silence()
        return all(s.finished for s in self.streams) or self.error is not None

    def _check_silence(self) -> None:
        """A silent or unresolvable endpoint, or two peers that both connect, look the same: no
        message at all. Say so once, a few seconds in, instead of recording nothing quietly."""
        wait = self.silent_warning_s
        if self._silence_checked or wait is None or time.monotonic() - self.started < wait:
            return
        self._silence_checked = True
        for s in self.streams:
            if s.counters.received == 0 and not s.finished:
                self.warnings.append(silence_warning(s.spec, s.bound_endpoint, wait))

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
        if self._run is None:  # the run could not be created: nothing to close
            self.ctx.term()
            return layout.STATUS_FAILED
        try:
            if self.error is None:
                self.run.close(layout.STATUS_COMPLETE)
            else:
                self.run.close(layout.STATUS_FAILED, describe_error(self.error))
        finally:
            self.ctx.term()
        if self.run.status == layout.STATUS_FAILED and self.error is None:
            self.error = RecorderError(self.run.error or "the final flush failed")
        return self.run.status

    def stats(self) -> RecordingStats:
        totals: RecordingStats = {
            "messages": 0,
            "bytes": 0,
            "drops": 0,
            "gaps": 0,
            "queue_bytes": 0,
            "elapsed_s": 0.0,
        }
        for s in self.streams:
            totals["messages"] += s.counters.received
            totals["bytes"] += s.counters.received_bytes
            totals["drops"] += s.counters.dropped
            totals["gaps"] += s.gaps
            totals["queue_bytes"] += s.queue.depth_bytes
        totals["elapsed_s"] = time.monotonic() - self.started
        return totals


def silence_warning(spec: SourceSpec, bound: str | None, seconds: float) -> str:
    if spec.proxy:
        return (
            f"no request through {bound or spec.endpoint} after {seconds:g} s: do the clients "
            f"connect to it, and does {spec.upstream} answer?"
        )
    how = "binds" if spec.bind else "connects"
    peer = "connect to it" if spec.bind else "bind"
    return (
        f"no message from {bound or spec.endpoint} after {seconds:g} s: is the source running, "
        f"and does it {peer} (this recorder's {spec.socket_type} {how})?"
    )


def describe_error(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    if isinstance(exc, RecorderError):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror} ({exc.filename or type(exc).__name__})"
    return f"{type(exc).__name__}: {exc}"
