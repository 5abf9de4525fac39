"""Replay while recording: `--follow` serves a run as its flushes land, about one flush behind
the recorder, and ends by itself once the recording has ended and everything was served."""

from __future__ import annotations

import statistics
import time

import pytest
import zmq

from recorder.errors import UsageError
from recorder.recording.recording import Recording, SourceSpec
from recorder.replay import Replayer
from recorder.simulators import AdzmqSimulator
from recorder.store import layout
from recorder.store.reader import RunReader
from recorder.store.run_writer import RunWriter
from tests.helpers import free_port, local, wait_for
from tests.recordhelp import running
from tests.replayhelp import client, make_run, recorded_frames, replaying, wait_clients

FLUSH_S = 0.05


def test_a_reader_refreshed_reads_on_past_its_old_end(tmp_path):
    w = RunWriter(tmp_path, name="live")
    s = w.add_stream("main", protocol="raw", endpoint=local(5999), socket_type="PULL",
                     role="connect")  # fmt: skip
    for i in range(3):
        s.append(w.started_ns + i, [b"%d" % i, b"x" * 100_000])
    w.flush()
    run = RunReader(w.path)
    stream = run.stream("main")
    assert stream.n_messages == 3 and run.status == layout.STATUS_RECORDING
    for i in range(3, 8):
        s.append(w.started_ns + i, [b"%d" % i, b"y" * 100_000])
    w.flush()
    assert stream.n_messages == 3  # read once at open, as before
    run.refresh()
    assert stream.n_messages == 8
    assert [bytes(m.frames[0]) for m in stream.messages(3)] == [b"%d" % i for i in range(3, 8)]
    w.close()
    run.refresh()
    assert run.status == layout.STATUS_COMPLETE and stream.n_messages == 8


@pytest.mark.timeout(60)
def test_follow_is_one_run_once_and_pub_or_push_only(tmp_path):
    a = make_run(tmp_path, [1, 2])
    b = make_run(tmp_path, [1, 2])
    with pytest.raises(UsageError, match="--follow plays one run, once"):
        Replayer([a, b], follow=True)
    with pytest.raises(UsageError, match="--follow plays one run, once"):
        Replayer(a, follow=True, loop=2)
    rep = make_run(tmp_path, [1, 2], streams={"main": ("REQ", "connect")})
    with pytest.raises(UsageError, match="--follow serves PUB and PUSH streams"):
        Replayer(rep, follow=True)


@pytest.mark.timeout(60)
def test_following_a_finished_run_plays_it_and_ends(ctx, tmp_path):
    path = make_run(tmp_path, [0, 10, 20])
    port = free_port()
    with replaying(path, follow=True, endpoints={"": local(port)}, paused=True) as rp:
        pull = client(ctx, zmq.PULL, local(port))
        wait_clients(rp)
        assert any("--follow plays what it holds" in w for w in rp.warnings)
        rp.resume()
        assert rp.wait(10)
        got = [pull.recv_multipart() for _ in range(3)]
    assert got == recorded_frames(path)


@pytest.mark.timeout(90)
def test_follow_serves_a_live_recording_as_it_is_committed_and_ends_with_it(ctx, tmp_path):
    sim = AdzmqSimulator(
        "tcp://127.0.0.1:*", rate=200, count=None, wait_for_subscriber=True, ctx=ctx,
        height=16, width=16,
    )  # fmt: skip
    rec = Recording(
        tmp_path, [SourceSpec(endpoint=sim.bind(), protocol="adzmq")], flush_interval=FLUSH_S
    )
    rec.start()
    port = free_port()
    arrivals: list[tuple[int, list[bytes]]] = []  # (time.time_ns() at arrival, frames)
    finished = False
    try:
        with running(sim):
            wait_for(lambda: RunReader(rec.run.path).stream("main").n_messages > 10, 20, "a flush")
            with replaying(
                rec.run.path, follow=True, endpoints={"": local(port)}, paused=True
            ) as rp:
                assert rp.warnings == []  # following a recording run is no surprise
                sub = client(ctx, zmq.SUB, local(port))
                wait_clients(rp)
                resumed_ns = time.time_ns()
                backlog = rec.streams[0].counters.received  # recorded before the resume
                rp.resume()

                def take(enough, timeout: float) -> None:
                    """Receive until `enough()` (a condition, not a clock: under load a fixed
                    window held too few messages)."""
                    deadline = time.monotonic() + timeout
                    while not enough() and time.monotonic() < deadline:
                        if sub.poll(50):
                            arrivals.append((time.time_ns(), sub.recv_multipart()))

                # more than 100 recorded after the resume (a receive batch may still hold a few
                # stamped before it: 10 to spare); the recorder keeps recording meanwhile
                take(lambda: len(arrivals) > backlog + 110, 30)
                assert len(arrivals) > backlog + 110, "messages arrive while the run is recorded"
                assert not rp.wait(0), "a follow replay ends only with the recording"
                finished, status = True, rec.finish()
                assert status == "complete"
                assert rp.wait(10), "the replay ends by itself once the recording has ended"
                status = rp.status()
                take(lambda: len(arrivals) >= status["messages"], 20)
                lag_ns = rp.timeline.lag_ns
    finally:
        if not finished:
            rec.finish()
    with RunReader(rec.run.path) as run:
        stream = run.stream("main")
        recv = stream.column("recv_ns")
        n = stream.n_messages
    assert status["state"] == "finished" and status["error"] is None
    assert status["messages"] == n
    # the subscriber joined before anything was sent: it got the whole run, byte for byte
    assert [frames for _, frames in arrivals] == recorded_frames(rec.run.path)
    # and each message about one flush after it was recorded (the backlog, recorded before the
    # replay was resumed and sent at once, aside): never before it was recorded, and as late
    # as flushes land: the lag is the longest recent commit delay (a 50 ms flush, but on a
    # loaded machine flushes land up to seconds late)
    live = [t - int(recv[i]) for i, (t, _) in enumerate(arrivals) if recv[i] > resumed_ns]
    assert len(live) > 100 and min(live) > 0
    median = statistics.median(live)
    assert median < max(1e9, 1.5 * lag_ns), f"median lag {median / 1e6} ms, commits {lag_ns}"
