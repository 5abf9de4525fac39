"""Shared by the replay tests: free ports, small runs made to order, a replayer that is always
closed, and clients that wait on conditions (never on a bare sleep for a peer)."""

from __future__ import annotations

import contextlib
import random
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import zmq

from recorder.recording.recording import Recording, SourceSpec
from recorder.replay import Replayer
from recorder.store.reader import RunReader
from recorder.store.run_writer import RunWriter

# Below Linux's ephemeral range (32768-60999): no connecting socket is handed one of these.
_PORTS = (20000, 32000)


def free_port(span: int = 1) -> int:
    """A TCP port P such that P .. P+span-1 are free on every interface (Open Ephys and
    pyMultiVideo replays bind a control socket on P+1)."""
    rng = random.Random()
    for _ in range(500):
        port = rng.randrange(_PORTS[0], _PORTS[1] - span)
        socks = []
        try:
            for k in range(span):
                s = socket.socket()
                socks.append(s)
                s.bind(("", port + k))
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port found")


def local(port: int) -> str:
    return f"tcp://127.0.0.1:{port}"


def wait_for(condition: Callable[[], object], timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


def make_run(
    runs_dir: Path,
    times_ms: list[float],
    messages: list[list[bytes]] | None = None,
    *,
    streams: dict[str, tuple[str, str]] | None = None,
    owner: list[str] | None = None,
    protocol: str = "raw",
    close: bool = True,
) -> Path:
    """A run whose message i is received `times_ms[i]` after the run started.

    Messages default to [b"<i>"]. `streams` maps name -> (recorded socket type, role), default
    one stream "main" recorded with a connecting PULL (replayed as a binding PUSH, which never
    drops). `owner[i]` names the stream of message i.
    """
    streams = streams or {"main": ("PULL", "connect")}
    messages = messages or [[b"%d" % i] for i in range(len(times_ms))]
    owner = owner or [next(iter(streams))] * len(times_ms)
    w = RunWriter(runs_dir, name="made")
    writers = {
        name: w.add_stream(
            name, protocol=protocol, endpoint="tcp://127.0.0.1:5999", socket_type=kind, role=role
        )
        for name, (kind, role) in streams.items()
    }
    for t, frames, name in zip(times_ms, messages, owner, strict=True):
        writers[name].append(w.started_ns + int(t * 1e6), frames)
    if close:
        w.close()
    else:
        w.flush()
    return w.path


def recorded_frames(run_path: Path, stream: str | None = None) -> list[list[bytes]]:
    with RunReader(run_path) as run:
        names = None if stream is None else [stream]
        return [[bytes(f) for f in m.frames] for m in run.messages(names)]


def record(
    runs_dir: Path,
    spec: SourceSpec,
    count: int,
    *,
    on_started: Callable[[Recording], None] | None = None,
    timeout: float = 20.0,
) -> Path:
    """Record `count` messages of `spec` into a new run; fail clearly if the source stalls."""
    rec = Recording(runs_dir, [spec], count=count, flush_interval=0.05)
    rec.start()
    try:
        if on_started is not None:
            on_started(rec)
        deadline = time.monotonic() + timeout
        while not rec.done:
            if time.monotonic() > deadline:
                got = rec.streams[0].counters.received
                raise AssertionError(f"recording stalled at {got} of {count} messages")
            time.sleep(0.005)
    finally:
        status = rec.finish()
    assert rec.error is None and status == "complete", (status, rec.error)
    return rec.run.path


@contextlib.contextmanager
def replaying(run_path: Path, **kwargs) -> Iterator[Replayer]:
    """A started Replayer, closed whatever happens."""
    rp = Replayer(run_path, **kwargs)
    try:
        rp.start()
        yield rp
    finally:
        rp.close()


def wait_clients(rp: Replayer, n: int = 1, timeout: float = 10.0) -> None:
    """A paused replayer counts its clients (PUB: once subscribed): wait for them."""
    wait_for(lambda: rp.status()["clients"] >= n, timeout, f"{n} client(s) of the replay")
    assert rp.status()["messages"] == 0


def client(ctx: zmq.Context, kind: int, endpoint: str, *, bind: bool = False) -> zmq.Socket:
    sock = ctx.socket(kind)
    sock.linger = 0
    if kind == zmq.SUB:
        sock.subscribe(b"")
    sock.bind(endpoint) if bind else sock.connect(endpoint)
    return sock


def receive(sock: zmq.Socket, n: int, timeout: float = 10.0) -> list[list[bytes]]:
    """Exactly n multipart messages, each within `timeout`."""
    out = []
    for _ in range(n):
        if not sock.poll(int(timeout * 1000)):
            raise AssertionError(f"got {len(out)} of {n} messages, then nothing for {timeout} s")
        out.append(sock.recv_multipart())
    return out


def quiet(sock: zmq.Socket, ms: int = 300) -> bool:
    """Nothing arrives within `ms` (to check that a paused or finished replay sends nothing)."""
    return not sock.poll(ms)


def request(sock: zmq.Socket, frames: list[bytes], timeout: float = 10.0) -> list[bytes]:
    sock.send_multipart(frames)
    if not sock.poll(int(timeout * 1000)):
        raise AssertionError(f"no reply to {frames[0][:40]!r} within {timeout} s")
    return sock.recv_multipart()
