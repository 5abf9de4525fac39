"""The replayer worker: stored messages -> pacing -> sockets that stand in for the servers.

Streams the recorder heard from publishers and pushers are sent on one clock, in recorded
order, by one thread. Streams the recorder pulled with requests (REQ) are served by a thread
each, answering clients' requests. Memory stays bounded: messages are read from the store in
windows, never loaded whole. Control (pause, resume, seek, step, speed, stop) is thread-safe
and takes effect between messages.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import zmq

from recorder import protocols
from recorder.contracts import ReplayStatus
from recorder.errors import UsageError
from recorder.limits import check_replay
from recorder.protocols.descriptor import Responder
from recorder.replay.control_planes import (
    CONTROL_PLANES,
    ControlPlane,
    PeerCounter,
    Serving,
    open_served,
)
from recorder.replay.pacer import Pacer
from recorder.replay.plan import StreamPlan, check_collisions, plan_stream, spread_auto
from recorder.replay.read_ahead import ReadAhead, pace_threads
from recorder.replay.responders import UNANSWERED_MODES, PairResponder, SequentialResponder
from recorder.replay.timeline import Timeline
from recorder.store import layout

if TYPE_CHECKING:
    from recorder.store.reader import Message

_ZERO_COPY = 64 << 10  # frames at least this large are sent without a copy
_QUEUE_BYTES = 64 << 20  # bytes a stream may have waiting in zmq's send queue
_SERVICE_S = 0.05  # control planes and subscriptions are looked at least this often
REPLY_TIMINGS = ("recorded", "immediate")  # REP replies: after the recorded latency, or at once
_DELIVER_MS = 5000  # a replay that ran to its end gives queued messages this long to leave


_SNDMORE = int(zmq.SNDMORE)  # plain ints: or-ing zmq's enum flags runs Python code each time


def send_frames(sock: zmq.Socket, frames: list, flags: int = 0) -> int:
    """Send a multipart message frame by frame: large frames zero-copy, small ones copied.

    A zero-copy frame is the reader's memoryview (a slice of a mapped chunk file), which zmq
    keeps alive until it has sent it; no `track`ing (a tracker per frame costs more than the
    copy it saves for all but large frames)."""
    flags = int(flags)
    more = flags | _SNDMORE
    size = 0
    for f in frames[:-1]:
        n = len(f)
        size += n
        sock.send(f, more, copy=n < _ZERO_COPY)
    if frames:
        f = frames[-1]
        n = len(f)
        size += n
        sock.send(f, flags, copy=n < _ZERO_COPY)
    return size


class Replayer:
    """Serves one run, or several on one clock (`run_path` a list; `offsets` shifts runs by
    run id, in seconds; `chain` plays a stream split over consecutive runs as one, `skip_gaps`
    cuts the idle time between runs: a session, see timeline.py), or with `follow` a run that
    is still being recorded."""

    def __init__(
        self,
        run_path: Path | Sequence[Path],
        *,
        streams: list[str] | None = None,
        endpoints: dict[str, str] | None = None,
        sockets: dict[str, str] | None = None,
        speed: float | None = None,
        max_speed: bool = False,
        rate: float | None = None,
        loop: int = 1,
        start: float | None = None,
        end: float | None = None,
        paused: bool = False,
        controlled: bool = False,
        match: str = "bytes",
        unknown_reply: bytes | None = None,
        unanswered: str = "silent",
        reply_timing: str = "recorded",
        cycle: bool = False,
        runs_dir: Path | None = None,
        offsets: dict[str, float] | None = None,
        follow: bool = False,
        chain: bool = False,
        skip_gaps: bool = False,
        skip_pauses: bool = False,
    ):
        check_replay(
            speed=speed, max_speed=max_speed, rate=rate, loop=loop, start=start, end=end,
            match=match,
        )  # fmt: skip
        paths = [run_path] if isinstance(run_path, Path) else [Path(p) for p in run_path]
        if follow and skip_pauses:
            raise UsageError("--skip-pauses replays finished runs, not with --follow")
        self.timeline = Timeline(
            paths, offsets, chain=chain, skip_gaps=skip_gaps, skip_pauses=skip_pauses
        )
        self.run_id = self.timeline.run_id
        self.follow = follow
        if follow and (len(paths) != 1 or loop != 1):
            raise UsageError("--follow plays one run, once (no --loop)")
        self.warnings: list[str] = [self._status_warning(r) for r in self.timeline.runs]
        self.warnings = [w for w in self.warnings if w]
        names = [self.timeline.key(n) for n in streams] if streams else self.timeline.streams
        endpoints, sockets = spread_auto(dict(endpoints or {}), names), dict(sockets or {})
        for option, given in (("--endpoint", endpoints), ("--socket", sockets)):
            if "" in given:  # no STREAM=: the only stream
                if len(names) != 1:
                    raise UsageError(f"{option} without STREAM= needs a one-stream replay")
                given[names[0]] = given.pop("")
            for n in list(given):
                given[self.timeline.find(n) or n] = given.pop(n)
        for n in [*endpoints, *sockets]:
            if n not in names:
                raise UsageError(f"--endpoint/--socket names stream {n!r}, not replayed")
        self.plans: dict[str, StreamPlan] = {}
        for n in names:
            plan = plan_stream(
                self.timeline.stream(n),
                endpoint=endpoints.get(n),
                socket_type=sockets.get(n),
                controlled=controlled,
            )
            plan.stream = n
            if follow and plan.on_request:
                raise UsageError(f"--follow serves PUB and PUSH streams; {n} is served as REP")
            self.plans[n] = plan
        check_collisions(self.plans.values())
        self.start_s, self.end_s, self.loops = start, end, loop
        if unanswered not in UNANSWERED_MODES:
            raise UsageError(f"--unanswered takes one of {', '.join(UNANSWERED_MODES)}")
        if reply_timing not in REPLY_TIMINGS:
            raise UsageError(f"--reply-timing takes one of {', '.join(REPLY_TIMINGS)}")
        self.match, self.unknown_reply = match, unknown_reply
        self.unanswered, self.reply_timing, self.cycle = unanswered, reply_timing, cycle
        self.runs_dir = runs_dir or paths[0].parent
        self.pacer = Pacer(speed=1.0 if speed is None else speed, rate=rate, max_speed=max_speed)
        if paused:
            self.pacer.pause()
        self.stop_event = threading.Event()
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._step = 0
        self.error: BaseException | None = None
        self.sent = 0
        self.sent_bytes = 0
        self.position_ns = self.timeline.started_ns + int((start or 0) * 1e9)
        self.loop_index = 0
        self.finished = False
        self.ctx = zmq.Context()
        self._threads: list[threading.Thread] = []
        self._unpace: Callable[[], None] = lambda: None  # see pace_threads
        self._sockets: dict[str, zmq.Socket] = {}
        self._peers: dict[str, PeerCounter] = {}
        self._subscribers: dict[str, int] = {}  # PUB streams: live subscriptions
        self._serviced = 0.0
        self._controls: list[ControlPlane] = []
        self._controls_closed: list[ControlPlane] = []  # kept after close: back-channel runs
        self.started_at = time.monotonic()
        self._lag_ns = 0  # following: how far behind the recording messages are sent
        self._ahead: ReadAhead | None = None  # the clock thread's reader

    def _drop_ahead(self) -> None:
        if self._ahead is not None:
            self._ahead.close()
            self._ahead = None

    @functools.cached_property
    def duration_s(self) -> float:
        """From the clock's start to the last committed message of the served streams: read
        from the run when first asked (zarr), not before the sockets are bound."""
        return self.timeline.duration_s(self.plans)

    def _status_warning(self, run) -> str:
        status = run.status
        if self.follow and status != layout.STATUS_RECORDING:
            return f"run {run.run_id} is {status}, not recording: --follow plays what it holds"
        if self.follow or status == layout.STATUS_COMPLETE:
            return ""
        return f"run {run.run_id} is {status}: replaying what was committed" + (
            " so far" if status == layout.STATUS_RECORDING else ""
        )

    def _queue_messages(self, name: str) -> int:
        """zmq's send queue, in messages, holding about _QUEUE_BYTES of this stream: frames
        in the queue keep their store pages resident, so the bound must be in bytes for
        memory to stay flat however long the run (1 MiB frames: 64 messages, not 1000)."""
        stats = self.timeline.stream(name).stats
        mean = (stats.get("bytes") or 0) / max(1, stats.get("messages") or 0)
        return int(min(1000, max(16, _QUEUE_BYTES // max(1, mean))))

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Open every socket (errors here, before anything is sent), then start sending."""
        try:
            for plan in self.plans.values():
                # an auto plan learns its port here
                self._sockets[plan.stream] = open_served(self.ctx, plan, self._preparer(plan))
                self._open_controls(plan)
        except BaseException:
            self._close_sockets()
            raise
        clocked = [n for n, p in self.plans.items() if not p.on_request]
        if clocked:
            if not (self.pacer.max_speed or self.follow):
                self._unpace = pace_threads()
            self._spawn(self._clock, clocked)
        for n, p in self.plans.items():
            if p.on_request:
                self._spawn(self._serve, n)
        self.started_at = time.monotonic()
        for t in self._threads:
            t.start()

    def _open_controls(self, plan: StreamPlan) -> None:
        member = self.timeline.member(plan.stream)
        serving = Serving(
            self.ctx,
            self.runs_dir,
            member.run.run_id,
            member.stream.name,
            pause=self.pause,
            resume=self.resume,
        )
        for kind, endpoint in plan.controls.items():
            self._controls.append(CONTROL_PLANES[kind](endpoint, serving))

    def _spawn(self, fn, *args) -> None:
        def run():
            try:
                fn(*args)
            except BaseException as exc:  # reported through .error
                self.error = self.error or exc
                self.stop_event.set()

        self._threads.append(threading.Thread(target=run, daemon=True, name=fn.__name__))

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in self._threads:
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        done = not any(t.is_alive() for t in self._threads)
        if done:
            self.finished = True
        return done

    def close(self) -> None:
        ran_out = (
            bool(self._threads)
            and not self.stop_event.is_set()
            and not any(t.is_alive() for t in self._threads)
        )
        self.stop()
        self.wait(10)
        self._unpace()  # the process's switch interval as this replay found it
        # zmq sends from a queue: closing with linger 0 right after the last send (at
        # --max-speed, up to the whole send queue) would drop what clients have not got yet
        self._close_sockets(linger=_DELIVER_MS if ran_out else 0)
        self.ctx.term()
        self.timeline.close()

    def _preparer(self, plan: StreamPlan) -> Callable[[zmq.Socket], None]:
        """Options and the client counter of a stream's socket, set before it binds: a client
        already connecting arrives at once, and one that arrived before its counter was
        attached was never counted (a paused replay then waits for it forever)."""

        def prepare(sock: zmq.Socket) -> None:
            if plan.socket_type == "PUB":
                sock.setsockopt(zmq.XPUB_NODROP, int(self.pacer.max_speed))
                # every (un)subscription, also on disconnect: a PUB client counts once
                # it has subscribed, not when it connected (messages before are lost)
                sock.setsockopt(zmq.XPUB_VERBOSER, 1)
                self._subscribers[plan.stream] = 0
            sock.sndhwm = self._queue_messages(plan.stream)
            if not plan.on_request:
                sock.sndtimeo = int(_SERVICE_S * 1000)  # see _send
            stale = self._peers.pop(plan.stream, None)  # an auto plan's port given back
            if stale is not None:
                stale.close()
            self._peers[plan.stream] = PeerCounter(sock)

        return prepare

    def _close_sockets(self, linger: int = 0) -> None:
        for c in self._controls:
            c.close()
        self._controls_closed.extend(self._controls)
        for p in self._peers.values():
            p.close()
        for s in self._sockets.values():
            s.close(linger=linger)
        self._controls, self._peers, self._sockets = [], {}, {}

    def back_channel_runs(self) -> list:
        """Runs that hold what clients sent back (pyMultiVideo DRAW_BOX) during this replay."""
        return [c.run for c in [*self._controls, *self._controls_closed] if c.run is not None]

    # -- control (any thread) ------------------------------------------------------------------

    def pause(self) -> None:
        self.pacer.pause()

    def resume(self) -> None:
        self.pacer.resume()

    def stop(self) -> None:
        self.stop_event.set()

    def seek(self, t_s: float) -> None:
        if t_s < 0:
            raise UsageError("seek time must be >= 0")
        self._commands.put(("seek", float(t_s)))

    def step(self, n: int = 1) -> None:
        if n <= 0:
            raise UsageError("step takes a positive count")
        self._commands.put(("step", int(n)))

    def set_speed(self, speed: float) -> None:
        if speed <= 0:
            raise UsageError("speed must be positive")
        self.pacer.set_speed(speed, None)

    def status(self) -> ReplayStatus:
        for p in self._peers.values():
            p.handle()
        state = (
            "finished"
            if self.finished
            else "stopped"
            if self.stop_event.is_set()
            else ("paused" if self.pacer.paused else "playing")
        )
        return {
            "state": state,
            "position_s": (self.position_ns - self.timeline.started_ns) / 1e9,
            "duration_s": self._duration_now(),
            "messages": self.sent,
            "bytes": self.sent_bytes,
            "elapsed_s": time.monotonic() - self.started_at,
            "loop": self.loop_index,
            "clients": sum(
                min(p.peers, self._subscribers[n]) if n in self._subscribers else p.peers
                for n, p in self._peers.items()
            ),
            "speed": self.pacer.speed,
            "error": None if self.error is None else str(self.error),
            "pauses": self.timeline.pauses,
            "skip_pauses": self.timeline.skip_pauses,
        }

    # -- the clock thread ----------------------------------------------------------------------

    def _idle(self, timeout: float) -> None:
        """Serve control planes (and note subscriptions) while waiting for the next message;
        following, look for new flushes (their delays set the lag)."""
        if self.follow:
            self.timeline.watch()
        xpubs = [self._sockets[n] for n in self._subscribers if n in self._sockets]
        if not self._controls and not xpubs:
            time.sleep(timeout)
            return
        poller = zmq.Poller()
        for sock in [*(c.sock for c in self._controls), *xpubs]:
            poller.register(sock, zmq.POLLIN)
        poller.poll(max(0, int(timeout * 1000)))
        self._service()

    def _service(self) -> None:
        """Clock thread only: answer control planes, count PUB subscribers."""
        self._serviced = time.monotonic()
        for c in self._controls:
            c.handle()
        for name in self._subscribers:
            sock = self._sockets.get(name)
            while sock is not None and sock.poll(0):
                event = sock.recv()
                if event[:1] == b"\x01":
                    self._subscribers[name] += 1
                elif event[:1] == b"\x00":
                    self._subscribers[name] = max(0, self._subscribers[name] - 1)

    def _duration_now(self) -> float:
        """A followed run grows: its duration is as far as the replay has got, at least."""
        position = (self.position_ns - self.timeline.started_ns) / 1e9
        return max(self.duration_s, position) if self.follow else self.duration_s

    def _messages(self, names: list[str], start: float | None) -> Iterator[Message]:
        return self.timeline.messages(names, start=start, stop=self.end_s)

    def _clocked(self, names: list[str], start: float | None) -> Iterator[Message | None]:
        """What the clock thread sends, read ahead by a thread of its own (the one before, of
        a seek or an earlier loop, stops); following, None means nothing new was committed yet."""
        self._drop_ahead()
        if not self.follow:
            self._ahead = ReadAhead(self._messages(names, start))
            return self._ahead

        def wait(timeout: float) -> bool:
            self._idle(timeout)
            return not self.stop_event.is_set()

        return self.timeline.follow(names, start, self.end_s, wait)

    def _keep_behind(self) -> None:
        """Following at the recorded pace: a message is due its recorded time plus the lag
        (about one flush: the longest recent commit delay), so messages leave as spaced as
        recorded and no later than one flush behind the recorder. The backlog read at the
        start goes at once; a pause adds its length until the lag next changes."""
        p = self.pacer
        if not (self.follow and self.timeline.live) or p.max_speed or p.rate or p.speed != 1:
            return
        lag = self.timeline.lag_ns
        if lag != self._lag_ns:
            self._lag_ns = lag
            p.rebase(time.time_ns() - lag)

    def _loops(self):
        n = 0
        while self.loops == 0 or n < self.loops:
            self.loop_index = n
            yield n
            n += 1

    def _take_commands(
        self, names: list[str], it: Iterator[Message | None]
    ) -> Iterator[Message | None]:
        """Apply queued seeks and steps; a seek returns a new iterator."""
        while not self._commands.empty():  # (this thread is the only one taking)
            cmd, arg = self._commands.get_nowait()
            if cmd == "seek":
                it = self._clocked(names, arg)
                self.position_ns = self.timeline.started_ns + int(arg * 1e9)
                self.pacer.rebase(None)
            elif cmd == "step":
                self._step += arg
        return it

    def _clock(self, names: list[str]) -> None:
        try:
            self._clock_loops(names)
        finally:
            self._drop_ahead()

    def _clock_loops(self, names: list[str]) -> None:
        socks = {n: self._sockets[n] for n in names}
        stop = self.stop_event
        for _ in self._loops():
            if self.follow:
                self._await_resume(stop)
            it = self._clocked(names, self.start_s)
            self.pacer.rebase(time.time_ns() if self.follow else None)  # following: backlog at once
            msg: Message | None = None  # read, not sent yet: kept while commands are taken
            while not stop.is_set():
                taken = self._take_commands(names, it)
                if taken is not it:  # a seek: what was read is no longer next
                    it, msg = taken, None
                if msg is None:
                    try:
                        msg = next(it)
                    except StopIteration:
                        break
                    if msg is None:
                        continue  # following: nothing committed yet; commands, stop first
                    self._keep_behind()
                ready = self._wait_for(msg, stop)
                if ready is None:
                    continue  # a command came in first: take it before sending anything
                if not ready:
                    return
                self.sent_bytes += self._send(socks[msg.stream], msg)
                self.sent += 1
                self.pacer.sent()
                self.position_ns = msg.recv_ns
                msg = None
                if time.monotonic() - self._serviced >= _SERVICE_S:
                    self._service()  # never starve control planes, even at --max-speed
            if stop.is_set():
                return

    def _await_resume(self, stop: threading.Event) -> None:
        """Following starts when the replay is resumed (or stepped): a replay opened paused
        would otherwise stay behind the recorder by as long as it waited."""
        while self.pacer.paused and self._commands.empty() and not stop.is_set():
            self._idle(_SERVICE_S)

    def _wait_for(self, msg: Message, stop: threading.Event) -> bool | None:
        """True when `msg` is due (or stepped), False when stopped, None when a seek or step
        came in: the caller takes it first. Commands and speed changes are looked at every
        _SERVICE_S even while a far-off message is awaited."""
        p = self.pacer
        if p.max_speed and not p.paused and self._commands.empty() and not stop.is_set():
            return True  # --max-speed: every message is due (the pacer's answer, without a lock)
        while not stop.is_set():
            if not self._commands.empty():
                return None
            if self.pacer.paused:
                if self._step:
                    self._step -= 1
                    self.pacer.rebase(msg.recv_ns)
                    return True
                self._idle(_SERVICE_S)
                continue
            due = self.pacer.due(msg.recv_ns)
            if due - time.perf_counter() > 2 * _SERVICE_S:
                self._idle(_SERVICE_S)
                continue
            if self.pacer.wait_until(due, self._idle, stop):
                return True
        return False

    def _send(self, sock: zmq.Socket, msg: Message) -> int:
        """Clients slower than the clock: the send waits for them inside zmq (without the GIL)
        for up to the socket's send timeout, then the stop event is looked at again. (Not
        NOBLOCK and a poll: at --max-speed the queue fills again and again, and the exception
        and the pyzmq Poller each time cost the sending thread 16 rather than 11 us a message.)"""
        while not self.stop_event.is_set():
            try:
                return send_frames(sock, msg.frames)
            except zmq.Again:
                continue
        return 0

    # -- request-driven streams ----------------------------------------------------------------

    def _responder(self, name: str):
        protocol = protocols.lookup(self.plans[name].protocol)
        if protocol.responder is Responder.PAIRS:
            return PairResponder(
                self.timeline.stream(name),
                match=self.match,
                unknown=self.unknown_reply,
                unanswered=self.unanswered,
                cycle=self.cycle,
            )
        return SequentialResponder(
            self._messages([name], self.start_s), refuse=protocol.refuse_request
        )

    def _reply_delay(self, latency_ns: int) -> float:
        """Seconds to wait before answering, as the recorded server took (scaled by speed)."""
        if self.reply_timing != "recorded" or self.pacer.max_speed or latency_ns <= 0:
            return 0.0
        return latency_ns / 1e9 / self.pacer.speed

    def _serve(self, name: str) -> None:
        """Answer each request; when the run has no more replies (after the last loop), stop
        answering, as karabo-bridge-serve-files does after its last train.

        The socket is a ROUTER (the REP wire protocol to REQ clients): unlike REP it can leave a
        request unanswered and take the next one, as a live server that never replied did."""
        sock = self._sockets[name]
        stop = self.stop_event
        responder = self._responder(name)
        while not stop.is_set():
            if not sock.poll(100):
                continue
            while self.pacer.paused and not stop.is_set():
                time.sleep(0.02)
            envelope, request = split_envelope(sock.recv_multipart())
            if envelope is None:
                continue  # no REQ envelope: a REP socket would drop it too
            frames, msg, latency_ns = responder.answer(request)
            if frames == []:
                if self.loops and self.loop_index + 1 >= self.loops:
                    last_word = getattr(responder, "no_reply", None)
                    if last_word is None:
                        return
                    self.sent_bytes += send_frames(sock, [*envelope, last_word])
                    continue  # --unanswered unknown-reply: that text, for ever after
                self.loop_index += 1
                responder = self._responder(name)
                frames, msg, latency_ns = responder.answer(request)
                if frames == []:
                    return  # an empty selection: nothing to serve at all
            if msg is not None:
                self.position_ns = msg.recv_ns
            if frames is None:
                continue  # recorded (or left) unanswered: the client's timeout fires
            delay = self._reply_delay(latency_ns)
            if delay and stop.wait(delay):
                return
            self.sent_bytes += send_frames(sock, [*envelope, *frames])
            if msg is not None:
                self.sent += 1


def split_envelope(msg: list[bytes]) -> tuple[list[bytes] | None, list[bytes]]:
    """A ROUTER message from a REQ: (routing frames up to and with the empty delimiter, body);
    (None, msg) when there is no delimiter."""
    try:
        cut = msg.index(b"")
    except ValueError:
        return None, msg
    return msg[: cut + 1], msg[cut + 1 :]
