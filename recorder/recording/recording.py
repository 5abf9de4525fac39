"""The recorder worker: sockets -> receive thread -> bounded queue -> writer thread -> run store.

Receiving and writing are separate threads so a slow disk never stalls the socket; a batch that
does not fit the queue is dropped and counted. Each stream has its own pair of threads and its own
zarr group, so streams never wait for each other.
"""

from __future__ import annotations

import copy
import operator
import threading
import time
from collections.abc import Callable, Sequence
from itertools import repeat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zmq

from recorder import protocols
from recorder.contracts import Batch, Marker, Received, RecordingStats, SessionAttrs, WriteItem
from recorder.errors import RecorderError, UsageError
from recorder.limits import check_recording
from recorder.protocols import codec_for
from recorder.protocols.detect import detect_protocol
from recorder.recording.byte_queue import ByteBoundedQueue
from recorder.recording.collector import space_collections
from recorder.recording.plans import SplitPlan, TriggerPlan
from recorder.recording.receive import (
    COMPANIONS,
    Companion,
    proxy_loop,
    request_loop,
    stream_loop,
)
from recorder.recording.receive_apart import ReceiveProcess
from recorder.recording.source_spec import AUTO, SILENT_WARNING_S, SourceSpec
from recorder.recording.timeline import BEFORE, IDLE_GUARD_NS, Keeper, Lane, Slot, Timeline
from recorder.store import layout

if TYPE_CHECKING:  # the store (zarr) is imported once the sockets are open: see Recording.start
    from recorder.store.run_writer import RunWriter

__all__ = [
    "SILENT_WARNING_S",
    "NoRunYet",
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

_FRAMES, _FIRST = operator.itemgetter(1), operator.itemgetter(0)


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

    lane: Lane
    """Which run each message goes to (recording/timeline.py): set by `write_to`."""

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
        self._received_before: int | None = None
        self.latest: Received | None = None
        """The last message received, (recv_ns, frames, extra): set on the receive thread with
        one assignment per batch, so a live view can look at the stream without recording it."""
        self.latest_batch: Sequence[Received] | None = None
        """The batch `latest` ends: a live view of one-channel-per-message streams (Open
        Ephys) finds every channel's latest block in it."""
        self._rx = threading.Thread(target=self._receive, name=f"rx-{spec.stream}", daemon=True)
        self._wx = threading.Thread(target=self._write, name=f"wx-{spec.stream}", daemon=True)

    # -- lifecycle -----------------------------------------------------------------------------

    def open(self) -> BaseException | None:
        """Start receiving: the sockets are open when this returns (or the error that stopped
        them). What arrives waits in the queue until `write_to`."""
        self._rx.start()
        self._socket_ready.wait(10)
        return self._socket_error

    def write_to(self, lane: Lane) -> None:
        self.lane = lane
        lane.start()
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
        """Messages missing by sequence number, over every run (none known before one exists)."""
        lane = getattr(self, "lane", None)
        return 0 if lane is None else lane.gaps

    # -- receive thread ------------------------------------------------------------------------

    def _socket(self, ctx: zmq.Context, kind: int, endpoint: str, bind: bool) -> zmq.Socket:
        sock = ctx.socket(kind)
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
            front = self._socket(self.ctx, zmq.ROUTER, spec.endpoint, bind=True)
            front.linger = _REPLY_LINGER_MS  # a reply sent just before closing still leaves
            self.bound_endpoint = front.getsockopt_string(zmq.LAST_ENDPOINT)
            assert spec.upstream, "SourceSpec.check() requires it of a proxy"
            try:
                back = self._socket(self.ctx, zmq.DEALER, spec.upstream, bind=False)
            except BaseException:
                front.close(linger=0)  # an open socket would keep ctx.term() waiting forever
                raise
            return [front, back], lambda: proxy_loop(front, back, self._emit, self._stop, remaining)
        if spec.socket_type == "REQ":
            sock = self._data_socket(self.ctx)
            self.bound_endpoint = spec.endpoint
            return [sock], lambda: request_loop(
                sock, spec.request, self._emit, self._stop, remaining
            )
        if self.receives_apart:
            apart = ReceiveProcess(self.ctx, spec.stream, self._open_streaming, self.count)
            self.bound_endpoint = apart.endpoint
            return [], lambda: apart.run(
                self._emit_waiting, self._stop, self._polled, self._dropped
            )
        sock, self.bound_endpoint, companions = self._open_streaming(self.ctx)
        undecided = [self.protocol is None]

        def detected_later() -> list[Companion]:
            # runs on the receive thread, which owns every socket it polls
            if not undecided[0] or self.protocol is None:
                return []
            undecided[0] = False
            return self._companions(self.ctx, self.protocol)

        def run():
            try:
                stream_loop(
                    sock, self._emit, self._stop, remaining, companions, detected_later,
                    self._polling,
                )  # fmt: skip
            finally:
                for c in companions:
                    c.close()

        return [sock], run

    @property
    def receives_apart(self) -> bool:
        """Received in a process of its own (recording/receive_apart.py): asked for, or what
        the protocol's streams of many small messages get by default (`auto`)."""
        spec = self.spec
        if spec.proxy or spec.socket_type == "REQ" or spec.receiver == "thread":
            return False
        if self.protocol is None:  # `auto` learns its control planes on the receive thread
            return False
        if spec.receiver == "process":
            return True
        d = spec.descriptor
        return d is not None and d.receive_apart

    def _data_socket(self, ctx: zmq.Context) -> zmq.Socket:
        spec = self.spec
        socket_type = spec.socket_type or spec.default_socket()  # check() has set it
        sock = self._socket(ctx, _ZMQ_TYPES[socket_type], spec.endpoint, spec.bind)
        if spec.socket_type == "SUB":
            for prefix in spec.subscribe or [b""]:
                sock.setsockopt(zmq.SUBSCRIBE, prefix)
        return sock

    def _open_streaming(self, ctx: zmq.Context) -> tuple[zmq.Socket, str, list[Companion]]:
        """SUB or PULL with the control sockets its clients keep alive (in the receive thread,
        or in the receive process with that process's own context)."""
        sock = self._data_socket(ctx)
        bound = sock.getsockopt_string(zmq.LAST_ENDPOINT) if self.spec.bind else self.spec.endpoint
        try:
            return sock, bound, self._companions(ctx, self.protocol)
        except BaseException:
            sock.close()
            raise

    def _companions(self, ctx: zmq.Context, protocol: str | None) -> list[Companion]:
        """A client that connects keeps the server's control planes alive, as its own
        clients do."""
        if not self.spec.heartbeat or self.spec.bind or protocol is None:
            return []
        kinds = protocols.get(protocol).companions
        return [COMPANIONS[kind](ctx, self.spec.endpoint) for kind in kinds]

    def _polled(self, ns: int) -> None:
        self._received_before = ns

    def _dropped(self, n: int) -> None:
        """Messages the receive process took but could not pass on."""
        self.counters.received += n
        self.counters.dropped += n

    def _polling(self) -> None:
        self._received_before = time.time_ns()

    def _idle_clock(self) -> int:
        """A receive time every message stamped before has reached the queue: told by the
        receive loop before each wait (SUB, PULL), else the clock less a guard."""
        told = self._received_before
        return time.time_ns() - IDLE_GUARD_NS if told is None else told

    def _remaining(self) -> int | None:
        return None if self.count is None else self.count - self.counters.received

    def _emit(self, batch: Sequence[Received], nbytes: int) -> None:
        c = self.counters
        c.received += len(batch)
        c.received_bytes += nbytes
        self.latest = batch[-1]
        self.latest_batch = batch
        if not self.queue.offer(batch, nbytes):
            c.dropped += len(batch)

    def _emit_waiting(self, batch: Sequence[Received], nbytes: int) -> None:
        """A receive process's batch waits for room in the queue: the pipe behind it holds
        up to `receive_apart._PIPE_HWM` more batches, so the recording buffers as much as a
        receive thread's (whose SUB socket holds what it has not taken yet) before it drops."""
        c = self.counters
        c.received += len(batch)
        c.received_bytes += nbytes
        self.latest = batch[-1]
        self.latest_batch = batch
        while not self.queue.put(batch, nbytes, 0.1):
            writer_gone = self._wx.ident is not None and not self._wx.is_alive()
            if writer_gone or (self._stop.is_set() and self._wx.ident is None):
                c.dropped += len(batch)
                return

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
        lane = self.lane
        told = 0  # drops told to the runs
        try:
            while True:
                clock = self._idle_clock()  # before looking: an empty queue then means all of it
                batch = self.queue.take_joined(0.05)
                if batch:
                    self._write_batch(batch)
                elif self.codec is None and self._undecided:
                    self._decide_if_due()
                else:
                    lane.idle(clock)
                dropped = self.counters.dropped - told
                if dropped:
                    lane.add_drops(dropped)
                    told += dropped
                if time.monotonic() >= next_flush:
                    more = self.queue.take_joined(0)  # what waits for a wake-up (byte_queue)
                    if more:
                        self._write_batch(more)
                    lane.flush()
                    next_flush = next_flush_after(next_flush, self.flush_interval)
                if batch is None and self.queue.drained:
                    break
            if self.codec is None and self._undecided:
                self._decide()
            lane.flush()
            lane.finish()
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
        frame = zmq.Frame
        received = batch  # bytes or views already (copied frames, a receive process's batch)
        firsts = map(_FIRST, map(_FRAMES, batch))  # (C maps: batches are thousands)
        if any(map(isinstance, firsts, repeat(frame))):  # zero-copy frames
            received = [
                (recv_ns, [f.buffer for f in frames] if isinstance(frames[0], frame) else frames, x)
                for recv_ns, frames, x in batch
            ]
        self.lane.feed_received(self.codec, received)
        self.counters.written += len(batch)

    def _decide_if_due(self) -> None:
        late = time.monotonic() - self._first_undecided >= _AUTO_SECONDS
        if len(self._undecided) >= _AUTO_MESSAGES or late:
            self._decide()

    def _decide(self) -> None:
        """`--protocol auto`: pick the protocol the first messages fit; the run says which."""
        sample = [
            [f if isinstance(f, bytes) else bytes(f) for f in frames]
            for _, frames, _ in self._undecided[:_AUTO_MESSAGES]
        ]
        self.protocol = detect_protocol(sample)
        self.codec = codec_for(self.protocol)
        self.lane.set_protocol(self.protocol)
        pending, self._undecided = self._undecided, []
        self._write_batch(pending)


class Recording:
    """A recording from one or more sources into one run, or into several: armed with a
    pre-trigger buffer (`trigger`: a run per trigger), split (`split`: a run per interval or
    size), paused and resumed, with markers. The CLI and the manager drive this; docs/recording.md
    says what each mode does.

    Without `trigger` and `split` it is one run, created when the sockets are open, with the
    job's `run_id`; its streams write straight into it (a pause or `split_now` changes that).
    With `trigger` no run exists until the first trigger: `run` and `run_id` raise
    `NoRunYet` until then (`created` says whether one exists, `current_run` is None-safe).
    `on_run(run)` is called for every run made and `on_run_closed(run)` once it is closed, in
    order, on a thread of the recording's own (never a stream's)."""

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
        session: SessionAttrs | None = None,
        trigger: TriggerPlan | None = None,
        split: SplitPlan | None = None,
        on_run: Callable[[RunWriter], None] | None = None,
        on_run_closed: Callable[[RunWriter], None] | None = None,
    ):
        if not sources:
            raise UsageError("nothing to record: give at least one endpoint")
        names = [s.check().stream for s in sources]
        if len(set(names)) != len(names):
            raise UsageError("two sources have the same stream name")
        check_recording(count=count, duration=duration, flush_interval=flush_interval)
        if trigger is not None:
            trigger.check()
        if split is not None:
            split.check()
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
        self.session = session
        self._session_wanted = trigger is not None or split is not None
        self._on_run, self._on_run_closed = on_run, on_run_closed
        self._runs: list[RunWriter] = []
        self._made: list[int] = []  # the slot index of each run, in the same order
        self.timeline = Timeline(
            names, trigger=trigger, split=split, make_run=self._make_run, close_run=self._closing
        )
        self._keeper = Keeper(self._keeper_failed)  # one, made here: streams call it at once
        self._release_collector: Callable[[], None] = lambda: None  # see collector.py
        self._opened_ns = time.time_ns()
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
        self._rules = self._trigger_rules(trigger)
        self._rule_warnings = 0
        self.started = time.monotonic()

    def _trigger_rules(self, plan: TriggerPlan | None) -> Any:
        """The plan's rules, checked against this recording's streams before anything opens."""
        if plan is None or not plan.rules:
            return None
        from recorder.recording import trigger_rules

        protocols_of = {
            s.spec.stream: (None if s.spec.protocol == AUTO else s.spec.protocol)
            for s in self.streams
        }
        rules = [trigger_rules.parse_rule(text) for text in plan.rules]
        return trigger_rules.RuleSet(rules, protocols_of)

    # -- runs ----------------------------------------------------------------------------------

    @property
    def run(self) -> RunWriter:
        """The run being written (the latest one made). Not armed: created by `start()` once
        the sockets are open, or here if asked for earlier (then before them, as a caller that
        wants it first expects). Armed: `NoRunYet` until the first trigger."""
        if self._runs:
            return self._runs[-1]
        if self.timeline.armed:
            raise NoRunYet("no run yet: the recording is armed and has not been triggered")
        return self.timeline.run_of(self.timeline.slots[0])

    @property
    def current_run(self) -> RunWriter | None:
        """The latest run made, or None (armed, no trigger yet); never makes one."""
        return self._runs[-1] if self._runs else None

    @property
    def runs(self) -> list[RunWriter]:
        """Every run made so far, oldest first."""
        return list(self._runs)

    @property
    def created(self) -> bool:
        """Whether a run exists (without a trigger it does once `start()` has opened the
        sockets)."""
        return bool(self._runs)

    @property
    def run_id(self) -> str:
        return self.run.run_id

    def _make_run(self, slot: Slot) -> RunWriter:
        """A slot's run: the first gets the job's run id; split and triggered runs go into the
        session (one is made for them when none was given)."""
        from recorder.store.run_writer import RunWriter

        session = self._session_for_runs()
        tl = self.timeline
        with tl.lock:  # the job's run id goes to the first run made, once
            run_id, self._run_id = self._run_id, None
        # the first run starts when the sockets opened: a message received while it was being
        # made (a receive process stamps from its first message on) is never before its start
        started = self._opened_ns if slot.start <= BEFORE else slot.start
        run = RunWriter(
            self._runs_dir,
            run_id=run_id,
            name=self._name,
            tags=self._tags,
            started_ns=started,
            session=session,
        )
        for spec in self.sources:
            run.add_stream(
                spec.stream,
                protocol=tl.protocols.get(spec.stream, spec.protocol),
                endpoint=spec.endpoint,
                socket_type=spec.socket_type or spec.default_socket(),  # check() has set it
                role=spec.role,
                options=spec.options(),
                compression=spec.compression,
            )
            if spec.stream in tl.protocols:
                run.streams[spec.stream].attrs["protocol_detected"] = True
        with tl.lock:
            trigger = None if slot.trigger is None else copy.deepcopy(slot.trigger)
            markers = tl.markers_for(slot)
            pauses = [dict(p) for p in tl.pauses_of(slot)]
            # in time order: a later slot's run may be made first by a stream that is ahead
            self._made.append(slot.index)
            self._made.sort()
            self._runs.insert(self._made.index(slot.index), run)
        if trigger is not None:
            run.set_attr("trigger", trigger)
        for m in markers:
            run.add_marker(m["text"], m["recv_ns"], m.get("author", ""))
        if pauses:
            run.set_pauses(pauses)  # type: ignore[arg-type]
        if self._on_run is not None:
            self._keep(lambda: self._on_run(run) if self._on_run else None)
        return run

    def _session_for_runs(self) -> SessionAttrs | None:
        """Split and triggered runs are one session: the given one, or one made with the
        first run (in the data folder above `runs_dir`)."""
        with self._lock:
            if self.session is None and self._session_wanted:
                from recorder.store.sessions import SessionFiles

                when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
                self.session = SessionFiles(Path(self._runs_dir).parent).create(
                    {"name": self._name or f"recording {when}"}
                )
            return self.session

    def _keep(self, job: Callable[[], None]) -> None:
        self._keeper.submit(job)

    def _keeper_failed(self, exc: BaseException) -> None:
        self.warnings.append(f"after a run: {describe_error(exc)}")

    def _closing(self, slot: Slot) -> None:
        """Every stream is done with the slot: close its run off the streams' threads."""
        if slot.run is not None:
            self._keep(lambda: self._close_run(slot))

    def _close_run(self, slot: Slot) -> None:
        run = slot.run
        if run is None or run.status != layout.STATUS_RECORDING:
            return
        with self.timeline.lock:
            pauses = [dict(p) for p in self.timeline.pauses_of(slot)]
        if pauses:
            run.set_pauses(pauses)  # type: ignore[arg-type]  # the final counts
        if self.error is None:
            run.close(layout.STATUS_COMPLETE)
        else:
            run.close(layout.STATUS_FAILED, describe_error(self.error))
        if self._on_run_closed is not None:
            self._on_run_closed(run)

    # -- control (any thread) ------------------------------------------------------------------

    def trigger(self, at_ns: int | None = None, reason: str = "manual") -> None:
        """Write the pre-trigger buffer around `at_ns` (now) into a run, or extend the open
        triggered run. `Conflict` when the recording is not armed."""
        self.timeline.trigger(time.time_ns() if at_ns is None else int(at_ns), reason)

    def pause(self) -> None:
        """Store nothing from now until `resume()`; the pause goes into the run's attributes."""
        for run, pauses in self.timeline.pause():
            run.set_pauses(pauses)

    def resume(self) -> None:
        for run, pauses in self.timeline.resume():
            run.set_pauses(pauses)

    def mark(self, text: str, author: str = "") -> Marker:
        """A user's event now (receive clock), into the run holding that time; armed, kept with
        the buffer and written if a trigger's window holds it."""
        return self.timeline.mark(text, author)

    def split_now(self) -> None:
        """End this run and start the next; `Conflict` when armed."""
        self.timeline.split_now()

    @property
    def state(self) -> str:
        """`armed`, `recording` or `paused`."""
        return self.timeline.state()

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Open every source's sockets first, then the run: a source that sends as soon as it
        sees us (a PUB that waits for subscribers) is heard while zarr is still loading, its
        messages queued. The run is created even when a socket fails, and closed as failed.
        Armed, no run is made: the store is loaded, and messages go to the pre-trigger buffer."""
        tl = self.timeline
        self._release_collector = space_collections()
        try:
            self._opened_ns = time.time_ns()
            error = None
            for s in self.streams:
                error = s.open()
                if error is not None:
                    break
            if tl.armed:
                import recorder.store.run_writer  # noqa: F401  # loaded before the first trigger
            else:
                tl.begin(time.time_ns())
                self.run  # noqa: B018  # the first run, made now
            if error is not None:
                raise error
            if tl.armed:
                tl.begin(self._opened_ns)
            for s in self.streams:
                lane = Lane(tl, s.spec.stream)
                if self._rules is not None:
                    lane.check = self._rule_check(s)
                s.write_to(lane)
        except BaseException as exc:
            self._fatal(exc)
            self.finish()
            raise
        self.started = time.monotonic()

    def _rule_check(self, s: StreamRecorder) -> Callable[[WriteItem], str | None]:
        check, name = self._rules.check, s.spec.stream

        def fired(item: WriteItem) -> str | None:
            rule = check(name, s.protocol, item)
            return None if rule is None else rule.text

        return fired

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
        # silence first: a poll late enough to end the duration as well must still see streams
        # that never got a message as running, not as finished by that stop
        self._check_silence()
        if self.duration is not None and time.monotonic() - self.started >= self.duration:
            self.stop()
        rules = self._rules
        if rules is not None and len(rules.warnings) > self._rule_warnings:
            self.warnings.extend(rules.warnings[self._rule_warnings :])
            self._rule_warnings = len(rules.warnings)
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
        """Stop, drain, flush and close every run; returns the final status: `failed` if any
        run failed, else `complete` (also for an armed recording that made no run)."""
        self.stop()
        for s in self.streams:
            s.join()
        tl = self.timeline
        try:
            for s in self.streams:
                lane = getattr(s, "lane", None)
                if lane is None:
                    lane = Lane(tl, s.spec.stream)  # its writer never started
                lane.settle()
            self._keeper.stop()
            for slot in list(tl.slots):  # never reached by the streams (a failed start)
                tl.slots.remove(slot)
                self._close_run(slot)
        finally:
            self.ctx.term()
            self._release_collector()
        if not self._runs:
            return layout.STATUS_FAILED if self.error is not None else layout.STATUS_COMPLETE
        failed = [r for r in self._runs if r.status == layout.STATUS_FAILED]
        if failed and self.error is None:
            self.error = RecorderError(failed[-1].error or "the final flush failed")
        return layout.STATUS_FAILED if failed else layout.STATUS_COMPLETE

    def stats(self) -> RecordingStats:
        tl = self.timeline
        totals: RecordingStats = {
            "messages": 0,
            "bytes": 0,
            "drops": 0,
            "gaps": 0,
            "queue_bytes": 0,
            "elapsed_s": 0.0,
            "state": self.state,
            "runs": len(self._runs),
            "triggers": tl.triggers,
            "armed_bytes": tl.armed_bytes,
            "armed_dropped": tl.armed_dropped,
            "paused_messages": tl.paused_messages,
        }
        for s in self.streams:
            totals["messages"] += s.counters.received
            totals["bytes"] += s.counters.received_bytes
            totals["drops"] += s.counters.dropped
            totals["gaps"] += s.gaps
            totals["queue_bytes"] += s.queue.depth_bytes
        totals["elapsed_s"] = time.monotonic() - self.started
        return totals


class NoRunYet(RecorderError):
    """An armed recording has made no run: nothing has triggered it yet."""


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
