"""The replayer worker: stored messages -> pacing -> sockets that stand in for the servers.

Streams the recorder heard from publishers and pushers are sent on one clock, in recorded
order, by one thread. Streams the recorder pulled with requests (REQ) are served by a thread
each, answering clients' requests. Memory stays bounded: messages are read from the store in
windows, never loaded whole. Control (pause, resume, seek, step, speed, stop) is thread-safe
and takes effect between messages.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import zmq

from recorder.errors import UsageError
from recorder.replay.control import (
    AdzmqControl,
    BackChannel,
    HeartbeatServer,
    PeerCounter,
    open_socket,
)
from recorder.replay.pacer import Pacer
from recorder.replay.plan import StreamPlan, plan_stream
from recorder.replay.responders import DEFAULT_UNKNOWN_REPLY, PairResponder, SequentialResponder
from recorder.store import layout
from recorder.store.reader import Message, RunReader

_ZERO_COPY = 64 << 10  # frames at least this large are sent without a copy


def send_frames(sock: zmq.Socket, frames: list, flags: int = 0) -> int:
    """Send a multipart message frame by frame: large frames zero-copy, small ones copied."""
    last = len(frames) - 1
    size = 0
    for i, f in enumerate(frames):
        n = len(f)
        size += n
        sock.send(f, flags | (zmq.SNDMORE if i < last else 0), copy=n < _ZERO_COPY)
    return size


class Replayer:
    def __init__(
        self,
        run_path: Path,
        *,
        streams: list[str] | None = None,
        endpoints: dict[str, str] | None = None,
        sockets: dict[str, str] | None = None,
        speed: float = 1.0,
        max_speed: bool = False,
        rate: float | None = None,
        loop: int = 1,
        start: float | None = None,
        end: float | None = None,
        paused: bool = False,
        controlled: bool = False,
        match: str = "bytes",
        unknown_reply: bytes = DEFAULT_UNKNOWN_REPLY,
        runs_dir: Path | None = None,
    ):
        if speed <= 0:
            raise UsageError("--speed must be positive")
        if rate is not None and rate <= 0:
            raise UsageError("--rate must be positive")
        if loop < 0:
            raise UsageError("--loop takes a count >= 0 (0: forever)")
        if start is not None and end is not None and end <= start:
            raise UsageError("--end must be after --start")
        if match not in ("bytes", "order"):
            raise UsageError("--match is bytes or order")
        self.reader = RunReader(run_path)
        self.run_id = self.reader.run_id
        self.warnings: list[str] = []
        status = self.reader.status
        if status != layout.STATUS_COMPLETE:
            self.warnings.append(
                f"run {self.run_id} is {status}: replaying what was committed"
                + (" so far" if status == layout.STATUS_RECORDING else "")
            )
        names = streams or list(self.reader.streams)
        for n in names:
            self.reader.stream(n)  # unknown stream -> StreamNotFound
        endpoints = dict(endpoints or {})
        if "" in endpoints:
            if len(names) != 1:
                raise UsageError("--endpoint without STREAM= needs a one-stream replay")
            endpoints[names[0]] = endpoints.pop("")
        for n in [*endpoints, *(sockets or {})]:
            if n not in names:
                raise UsageError(f"--endpoint/--socket names stream {n!r}, not replayed")
        self.plans: dict[str, StreamPlan] = {
            n: plan_stream(
                self.reader.stream(n),
                endpoint=endpoints.get(n),
                socket_type=(sockets or {}).get(n),
                controlled=controlled,
            )
            for n in names
        }
        self.start_s, self.end_s, self.loops = start, end, loop
        self.match, self.unknown_reply = match, unknown_reply
        self.runs_dir = runs_dir or Path(run_path).parent
        self.pacer = Pacer(speed=speed, rate=rate, max_speed=max_speed)
        if paused:
            self.pacer.pause()
        self.stop_event = threading.Event()
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._step = 0
        self.error: BaseException | None = None
        self.sent = 0
        self.sent_bytes = 0
        self.position_ns = self.reader.started_ns + int((start or 0) * 1e9)
        self.loop_index = 0
        self.finished = False
        self.ctx = zmq.Context()
        self._threads: list[threading.Thread] = []
        self._sockets: dict[str, zmq.Socket] = {}
        self._peers: dict[str, PeerCounter] = {}
        self._controls: list = []
        self._controls_closed: list = []  # kept after close: the back-channel run, if any
        self.started_at = time.monotonic()
        self.duration_s = self._duration()

    def _duration(self) -> float:
        first, last = None, None
        for n in self.plans:
            s = self.reader.stream(n)
            if s.n_messages:
                a, b = (
                    int(s.column("recv_ns", 0, 1)[0]),
                    int(s.column("recv_ns", s.n_messages - 1)[0]),
                )
                first = a if first is None else min(first, a)
                last = b if last is None else max(last, b)
        return 0.0 if first is None else (last - self.reader.started_ns) / 1e9

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Open every socket (errors here, before anything is sent), then start sending."""
        try:
            for plan in self.plans.values():
                sock = open_socket(self.ctx, plan.zmq_type, plan.endpoint, bind=plan.bind)
                if plan.socket_type == "PUB":
                    sock.setsockopt(zmq.XPUB_NODROP, int(self.pacer.max_speed))
                sock.sndhwm = 1000
                self._sockets[plan.stream] = sock
                self._peers[plan.stream] = PeerCounter(sock)
                self._open_controls(plan)
        except BaseException:
            self._close_sockets()
            raise
        clocked = [n for n, p in self.plans.items() if not p.on_request]
        if clocked:
            self._spawn(self._clock, clocked)
        for n, p in self.plans.items():
            if p.on_request:
                self._spawn(self._serve, n)
        self.started_at = time.monotonic()
        for t in self._threads:
            t.start()

    def _open_controls(self, plan: StreamPlan) -> None:
        for kind, endpoint in plan.controls.items():
            if kind == "heartbeat":
                self._controls.append(HeartbeatServer(self.ctx, endpoint))
            elif kind == "backchannel":
                self._controls.append(
                    BackChannel(self.ctx, endpoint, self.runs_dir, self.run_id, plan.stream)
                )
            elif kind == "adzmq-control":
                self.pacer.pause()  # the driver says when to start
                self._controls.append(
                    AdzmqControl(self.ctx, endpoint, on_start=self.resume, on_stop=self.pause)
                )

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
        self.stop()
        self.wait(10)
        self._close_sockets()
        self.ctx.term()
        self.reader.close()

    def _close_sockets(self) -> None:
        for c in self._controls:
            c.close()
        self._controls_closed.extend(self._controls)
        for p in self._peers.values():
            p.close()
        for s in self._sockets.values():
            s.close(linger=0)
        self._controls, self._peers, self._sockets = [], {}, {}

    def back_channel_runs(self) -> list:
        """Runs that hold what clients sent back (pyMultiVideo DRAW_BOX) during this replay."""
        return [
            c.run for c in [*self._controls, *self._controls_closed]
            if isinstance(c, BackChannel) and c.run is not None
        ]  # fmt: skip

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

    def status(self) -> dict:
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
            "position_s": (self.position_ns - self.reader.started_ns) / 1e9,
            "duration_s": self.duration_s,
            "messages": self.sent,
            "bytes": self.sent_bytes,
            "elapsed_s": time.monotonic() - self.started_at,
            "loop": self.loop_index,
            "clients": sum(p.peers for p in self._peers.values()),
            "speed": self.pacer.speed,
            "error": None if self.error is None else str(self.error),
        }

    # -- the clock thread ----------------------------------------------------------------------

    def _idle(self, timeout: float) -> None:
        """Serve control planes while waiting for the next message."""
        if not self._controls:
            time.sleep(timeout)
            return
        poller = zmq.Poller()
        for c in self._controls:
            poller.register(c.sock, zmq.POLLIN)
        poller.poll(max(0, int(timeout * 1000)))
        for c in self._controls:
            c.handle()

    def _messages(self, names: list[str], start: float | None) -> Iterator[Message]:
        return self.reader.messages(names, start=start, stop=self.end_s)

    def _loops(self):
        n = 0
        while self.loops == 0 or n < self.loops:
            self.loop_index = n
            yield n
            n += 1

    def _take_commands(self, names: list[str], it: Iterator[Message]) -> Iterator[Message]:
        while True:
            try:
                cmd, arg = self._commands.get_nowait()
            except queue.Empty:
                return it
            if cmd == "seek":
                it = self._messages(names, arg)
                self.position_ns = self.reader.started_ns + int(arg * 1e9)
                self.pacer.rebase(None)
            elif cmd == "step":
                self._step += arg

    def _clock(self, names: list[str]) -> None:
        socks = {n: self._sockets[n] for n in names}
        stop = self.stop_event
        for _ in self._loops():
            it = self._messages(names, self.start_s)
            self.pacer.rebase(None)
            while not stop.is_set():
                it = self._take_commands(names, it)
                msg = next(it, None)
                if msg is None:
                    break
                if not self._wait_for(msg, names, stop):
                    return
                self.sent_bytes += self._send(socks[msg.stream], msg)
                self.sent += 1
                self.pacer.sent()
                self.position_ns = msg.recv_ns
            if stop.is_set():
                return

    def _wait_for(self, msg: Message, names: list[str], stop: threading.Event) -> bool:
        while not stop.is_set():
            if self.pacer.paused:
                if self._step:
                    self._step -= 1
                    self.pacer.rebase(msg.recv_ns)
                    return True
                self._idle(0.05)
                if not self._commands.empty():
                    return True  # a seek while paused: let the caller re-read (msg is sent)
                continue
            if self.pacer.wait_until(self.pacer.due(msg.recv_ns), self._idle, stop):
                return True
        return False

    def _send(self, sock: zmq.Socket, msg: Message) -> int:
        while not self.stop_event.is_set():
            try:
                return send_frames(sock, msg.frames, zmq.NOBLOCK)
            except zmq.Again:  # clients are slower than the clock: wait for them
                sock.poll(50, zmq.POLLOUT)
        return 0

    # -- request-driven streams ----------------------------------------------------------------

    def _responder(self, name: str):
        plan = self.plans[name]
        if plan.protocol == "reqrep":
            return PairResponder(
                self.reader.stream(name), match=self.match, unknown=self.unknown_reply
            )
        return SequentialResponder(self._messages([name], self.start_s), plan.protocol)

    def _serve(self, name: str) -> None:
        """Answer each request; when the run has no more replies (after the last loop), stop
        answering, as karabo-bridge-serve-files does after its last train."""
        sock = self._sockets[name]
        stop = self.stop_event
        responder = self._responder(name)
        while not stop.is_set():
            if not sock.poll(100):
                continue
            while self.pacer.paused and not stop.is_set():
                time.sleep(0.02)
            request = sock.recv_multipart()
            frames, msg = responder.answer(request)
            if not frames:
                if self.loops and self.loop_index + 1 >= self.loops:
                    return
                self.loop_index += 1
                responder = self._responder(name)
                frames, msg = responder.answer(request)
                if not frames:
                    return  # an empty selection: nothing to serve at all
            self.sent_bytes += send_frames(sock, frames)
            if msg is not None:
                self.sent += 1
                self.position_ns = msg.recv_ns
