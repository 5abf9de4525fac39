"""Shared by the replay tests: small runs made to order, a replayer that is always closed, and
clients that wait on conditions (never on a bare sleep for a peer). Free ports and wait_for are
in tests/helpers.py, recording a run for real in tests/recordhelp.py."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import zmq

from recorder.replay import Replayer
from recorder.store.reader import RunReader
from recorder.store.run_writer import RunWriter
from tests.helpers import wait_for


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
