"""Receiving in a process of its own (recording/receive_apart.py): what arrives is stored the
same as with the receive thread, a stop loses nothing received, and the child never outlives
what it serves (the recording's end, a kill of the child, a kill of its parent)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
import zmq

from recorder.errors import UsageError
from recorder.recording import receive_apart
from recorder.recording.byte_queue import ByteBoundedQueue
from recorder.recording.receive_apart import (
    PackedBatch,
    ReceiveProcess,
    ReceiveProcessError,
    pack,
    unpack,
)
from recorder.recording.recording import Recording, StreamRecorder
from recorder.recording.source_spec import SourceSpec
from recorder.store.reader import RunReader
from tests.recordhelp import record


def _messages() -> list[list[bytes]]:
    """Frame counts and sizes that vary, one frame large enough to travel as a view."""
    rng = np.random.default_rng(7)
    out = []
    for i in range(300):
        n_frames = 1 + i % 4
        out.append([rng.bytes(int(rng.integers(0, 5000))) for _ in range(n_frames)])
    out[150] = [b"", rng.bytes(300_000), b"tail"]
    return out


def _wait(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def _children() -> list[int]:
    """Live child processes of this one (a reaped one is gone, a zombie counts as gone)."""
    out = []
    for task in os.listdir("/proc"):
        if not task.isdigit():
            continue
        try:
            with open(f"/proc/{task}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == os.getpid() and fields[0] != "Z":
            out.append(int(task))
    return out


def _recording_fifty(tmp_path) -> tuple[zmq.Socket, Recording]:
    """A recording received apart that has taken 50 messages from the PUSH socket returned."""
    push = zmq.Context.instance().socket(zmq.PUSH)
    port = push.bind_to_random_port("tcp://127.0.0.1")
    spec = SourceSpec(f"tcp://127.0.0.1:{port}", socket_type="PULL", receiver="process")
    rec = Recording(tmp_path, [spec], flush_interval=0.05)
    rec.start()
    for i in range(50):
        push.send_multipart([b"%d" % i])
    _wait(lambda: rec.streams[0].counters.received >= 50, 20, "nothing received")
    return push, rec


def test_a_packed_batch_unpacks_to_the_same_frames():
    batch = [(1000 + i, frames, None) for i, frames in enumerate(_messages())]
    parts = [zmq.Frame(bytes(memoryview(p).cast("B"))) for p in pack(batch)]
    back, nbytes = unpack(parts)
    assert nbytes == sum(len(f) for _, frames, _ in batch for f in frames)
    assert [(t, [bytes(f) for f in frames], x) for t, frames, x in back] == batch


def test_uniform_messages_unpack_as_views_of_one_buffer():
    batch = [(i, [b"\x00", b"head%d" % i, bytes(4096)], None) for i in range(512)]
    back, _ = unpack([zmq.Frame(bytes(memoryview(p).cast("B"))) for p in pack(batch)])
    assert all(isinstance(f, memoryview) for _, frames, _ in back for f in frames)
    assert [(t, [bytes(f) for f in frames], x) for t, frames, x in back] == batch


def test_a_packed_batch_is_read_as_the_list_it_unpacks_to():
    batch = [(1000 + i, frames, None) for i, frames in enumerate(_messages())]
    batch.append((5000, [b"last", b"", b"of three"], None))

    def packed() -> PackedBatch:
        return PackedBatch([zmq.Frame(bytes(memoryview(p).cast("B"))) for p in pack(batch)])

    def plain(messages) -> list:
        return [(t, [bytes(f) for f in frames], x) for t, frames, x in messages]

    lazy = packed()
    assert len(lazy) == len(batch)
    assert lazy.nbytes == sum(len(f) for _, frames, _ in batch for f in frames)
    assert plain([lazy[-1]]) == batch[-1:]  # the receive side's `latest`, built on its own
    assert plain([lazy[len(batch) - 1]]) == batch[-1:]
    assert plain(lazy) == batch
    assert plain(lazy[-3:]) == batch[-3:] and plain([lazy[0]]) == batch[:1]
    assert lazy.messages() is lazy.messages()  # unpacked once
    q = ByteBoundedQueue(1 << 20)  # the writer takes lists, one packed batch or joined ones
    q.offer(packed(), 10)
    alone = q.take_joined(0.1)
    assert isinstance(alone, list) and plain(alone) == batch
    q.offer(packed(), 10)
    q.offer(packed(), 10)
    both = q.take_joined(0.1)
    assert isinstance(both, list) and plain(both) == batch + batch


@pytest.mark.timeout(60)
def test_a_stream_received_apart_is_stored_as_sent(tmp_path):
    messages = _messages()
    ctx = zmq.Context.instance()
    push = ctx.socket(zmq.PUSH)
    port = push.bind_to_random_port("tcp://127.0.0.1")
    spec = SourceSpec(f"tcp://127.0.0.1:{port}", socket_type="PULL", receiver="process")

    def send(rec: Recording) -> None:
        assert rec.streams[0].receives_apart
        for frames in messages:
            push.send_multipart(frames)  # PUSH waits for the peer: nothing is lost

    try:
        path = record(tmp_path, spec, count=len(messages), on_started=send)
    finally:
        push.close(linger=0)
    with RunReader(path) as run:
        got = [[bytes(f) for f in m.frames] for m in run.stream("main").messages()]
        assert run.summary()["drops"] == 0
    assert got == messages


@pytest.mark.timeout(60)
def test_messages_waiting_for_the_recorder_are_not_older_than_its_run(tmp_path):
    """The sender is already blocked on its first message when the recording starts: the
    receive process takes them at once, while the run is still being made."""
    ctx = zmq.Context.instance()
    push = ctx.socket(zmq.PUSH)
    port = push.bind_to_random_port("tcp://127.0.0.1")
    spec = SourceSpec(f"tcp://127.0.0.1:{port}", socket_type="PULL", receiver="process")
    sender = threading.Thread(target=lambda: [push.send(b"%d" % i) for i in range(200)])
    sender.start()  # blocks until the recorder's child connects
    try:
        path = record(tmp_path, spec, count=200)
    finally:
        sender.join(30)
        push.close(linger=0)
    with RunReader(path) as run:
        recv = run.stream("main").column("recv_ns")
        assert len(recv) == 200
        assert run.started_ns <= int(recv.min())


@pytest.mark.timeout(60)
def test_a_stop_keeps_everything_received_and_ends_the_child(tmp_path):
    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.PUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    spec = SourceSpec(f"tcp://127.0.0.1:{port}", socket_type="SUB", receiver="process")
    rec = Recording(tmp_path, [spec], flush_interval=0.05)
    rec.start()
    stop = threading.Event()
    sent = [0]

    def publish() -> None:
        while not stop.is_set():
            pub.send_multipart([b"%d" % sent[0], bytes(100)])
            sent[0] += 1
            time.sleep(0.0005)

    sender = threading.Thread(target=publish, daemon=True)
    sender.start()
    try:
        _wait(lambda: rec.streams[0].counters.received >= 200, 20, "nothing received")
        assert _children(), "no receive process"
    finally:
        stop.set()
        sender.join(5)
        status = rec.finish()
        pub.close(linger=0)
    assert status == "complete", rec.error
    received = rec.streams[0].counters.received
    with RunReader(rec.run.path) as run:
        stream = run.stream("main")
        numbers = [int(bytes(m.frames[0])) for m in stream.messages()]
    assert len(numbers) == received >= 200
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # none missing
    _wait(lambda: not _children(), 10, "the receive process outlived the recording")


@pytest.mark.timeout(60)
def test_a_killed_receive_process_fails_the_recording_and_keeps_the_run(tmp_path):
    push, rec = _recording_fifty(tmp_path)
    try:
        (child,) = _children()
        os.kill(child, signal.SIGKILL)
        _wait(lambda: rec.error is not None, 20, "the recording did not notice")
    finally:
        status = rec.finish()
        push.close(linger=0)
    assert status == "failed"
    assert "receive process ended with exit code -9" in str(rec.error)
    with RunReader(rec.run.path) as run:
        assert run.stream("main").n_messages == 50


@pytest.mark.timeout(60)
def test_the_receive_process_ends_when_its_parent_is_killed(tmp_path):
    script = textwrap.dedent(
        f"""
        import multiprocessing, sys, time
        from pathlib import Path
        from recorder.recording.recording import Recording, SourceSpec
        spec = SourceSpec("tcp://127.0.0.1:9", socket_type="SUB", receiver="process")
        rec = Recording(Path({str(tmp_path)!r}), [spec])
        rec.start()
        print(multiprocessing.active_children()[0].pid, flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        parent.kill()
        parent.wait(10)

        def gone() -> bool:
            try:
                with open(f"/proc/{child}/stat") as f:
                    return f.read().rsplit(")", 1)[1].split()[0] == "Z"
            except FileNotFoundError:
                return True

        _wait(gone, 10, "the receive process outlived its parent")
    finally:
        parent.kill()


@pytest.mark.timeout(30)
def test_a_socket_the_child_cannot_open_is_the_usual_error(tmp_path):
    ctx = zmq.Context.instance()
    taken = ctx.socket(zmq.PULL)
    port = taken.bind_to_random_port("tcp://127.0.0.1")
    spec = SourceSpec(f"tcp://127.0.0.1:{port}", socket_type="PULL", bind=True, receiver="process")
    rec = Recording(tmp_path, [spec])
    try:
        with pytest.raises(UsageError, match="cannot bind"):
            rec.start()
    finally:
        taken.close(linger=0)
    assert rec.run.status == "failed"
    _wait(lambda: not _children(), 10, "a receive process was left behind")


@pytest.mark.parametrize(
    ("spec", "apart"),
    [
        (SourceSpec("tcp://127.0.0.1:5", protocol="openephys"), True),
        (SourceSpec("tcp://127.0.0.1:5", protocol="openephys", receiver="thread"), False),
        (SourceSpec("tcp://127.0.0.1:5", protocol="adzmq"), False),
        (SourceSpec("tcp://127.0.0.1:5", protocol="raw", receiver="process"), True),
        (SourceSpec("tcp://127.0.0.1:5", protocol="auto", receiver="process"), False),
        (SourceSpec("tcp://127.0.0.1:5", protocol="karabo", socket_type="REQ"), False),
    ],
)
def test_which_streams_are_received_apart(spec, apart):
    stream = StreamRecorder(
        zmq.Context.instance(),
        spec.check(),
        count=None,
        flush_interval=1.0,
        queue_bytes=1 << 20,
        on_fatal=lambda exc: None,
    )
    assert stream.receives_apart is apart


def test_an_unknown_receiver_is_refused():
    with pytest.raises(UsageError, match="unknown receiver 'fork'"):
        SourceSpec("tcp://127.0.0.1:5", receiver="fork").check()


class _Failing:
    """A control socket whose service fails on the first wake-up (in the child)."""

    def register(self, poller: zmq.Poller) -> None:
        pass

    def service(self, poller: zmq.Poller, events: dict) -> None:
        raise RuntimeError("boom")

    def close(self) -> None:
        pass


@pytest.mark.timeout(30)
def test_an_error_in_the_child_loop_fails_the_parent_with_it():
    def open_sockets(ctx: zmq.Context):
        sock = ctx.socket(zmq.PULL)
        sock.bind("tcp://127.0.0.1:*")
        return sock, sock.getsockopt_string(zmq.LAST_ENDPOINT), [_Failing()]

    apart = ReceiveProcess(zmq.Context.instance(), "main", open_sockets, None)
    with pytest.raises(ReceiveProcessError, match="RuntimeError: boom"):
        apart.run(lambda b, n: None, threading.Event(), lambda ns: None, lambda n: None)
    _wait(lambda: not _children(), 10, "the receive process was left behind")


@pytest.mark.timeout(60)
def test_a_sigterm_ends_the_child_like_a_stop(tmp_path):
    push, rec = _recording_fifty(tmp_path)
    try:
        (child,) = _children()
        os.kill(child, signal.SIGTERM)
        _wait(lambda: not _children(), 10, "the receive process ignored SIGTERM")
    finally:
        status = rec.finish()
        push.close(linger=0)
    assert status == "complete", rec.error
    with RunReader(rec.run.path) as run:
        assert run.stream("main").n_messages == 50


def _pushed_to_a_receive_process(count: int | None) -> tuple[zmq.Socket, ReceiveProcess]:
    """A PUSH socket and a receive process whose child PULLs from it."""
    push = zmq.Context.instance().socket(zmq.PUSH)
    endpoint = f"tcp://127.0.0.1:{push.bind_to_random_port('tcp://127.0.0.1')}"

    def open_sockets(c: zmq.Context):
        sock = c.socket(zmq.PULL)
        sock.connect(endpoint)
        return sock, endpoint, []

    return push, ReceiveProcess(zmq.Context.instance(), "main", open_sockets, count)


@pytest.mark.timeout(60)
def test_batches_come_in_shared_slots_and_over_the_pipe_when_no_slot_takes_them(monkeypatch):
    """One slot: batches are packed into it and the parent keeps them; a message larger than
    the slot comes over the pipe and ends the slot (on both sides), so the batches after it
    come over the pipe too while the kept ones hold the slot. All arrive intact and in order,
    and once the kept batches are gone the slot carries batches again."""
    monkeypatch.setattr(receive_apart, "_SLOTS", 1)
    monkeypatch.setattr(receive_apart, "_SLOT_BYTES", 1 << 20)  # > a batch of 512 small ones
    push, apart = _pushed_to_a_receive_process(None)
    kept: list = []
    stop = threading.Event()
    receiver = threading.Thread(
        target=apart.run,
        args=(lambda batch, n: kept.append(batch), stop, lambda ns: None, lambda n: None),
        daemon=True,
    )
    receiver.start()
    try:
        small = [[b"%d" % i, bytes([i % 256]) * 1000] for i in range(800)]
        phases = [small[:600], [[b"large", bytes((1 << 20) + 1)]], small[600:]]
        sent: list = []
        for phase in phases:  # one after the other: the large one in a batch of its own
            for frames in phase:
                push.send_multipart(frames)
            sent.extend(phase)
            _wait(lambda: sum(map(len, kept)) >= len(sent), 30, "not everything arrived")
        got = [[bytes(f) for f in frames] for batch in kept for _, frames, _ in batch]
        assert got == sent
        in_slot = apart.ring.viewed
        assert in_slot >= 1 and len(kept) - in_slot >= 2  # the large one's, and one after it
        kept.clear()  # the slot is free again: the next batches take it
        deadline = time.monotonic() + 30
        while apart.ring.viewed == in_slot:
            assert time.monotonic() < deadline, "the slot was never used again"
            push.send_multipart([b"again", b""])
            time.sleep(0.01)
    finally:
        stop.set()
        receiver.join(10)
        push.close(linger=0)
    assert not receiver.is_alive()
    _wait(lambda: not _children(), 10, "the receive process was left behind")


@pytest.mark.timeout(60)
def test_a_stop_after_the_child_ended_at_its_count_does_not_wait_for_it():
    """The child ends at its count and closes the pipe; a stop asked after that must not
    block on a pipe no one reads (a PAIR socket with no peer blocks a plain send)."""
    push, apart = _pushed_to_a_receive_process(3)
    stop = threading.Event()
    got: list = []

    def emit(batch, nbytes):
        got.extend(batch)
        if len(got) >= 3:  # the child has what it counts: let it end before the stop
            apart.proc.join(10)
            assert not apart.proc.is_alive()
            stop.set()

    for i in range(3):
        push.send_multipart([b"%d" % i])
    receiver = threading.Thread(
        target=apart.run, args=(emit, stop, lambda ns: None, lambda n: None), daemon=True
    )
    receiver.start()
    receiver.join(20)
    push.close(linger=0)
    assert not receiver.is_alive(), "the parent waits on a pipe its child has left"
    assert [bytes(frames[0]) for _, frames, _ in got] == [b"0", b"1", b"2"]
