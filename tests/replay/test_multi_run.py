"""Several runs on one clock: streams of two runs (two recorders at the same time) served
together, interleaved by their recorded receive times or shifted by an offset; stream names
that two runs share are told apart as RUN/NAME; two streams that would bind one port are
refused before anything binds."""

from __future__ import annotations

import itertools
import socket
import time

import pytest
import zmq

from recorder.errors import UsageError
from recorder.recording.recording import Recording, SourceSpec
from recorder.replay import Replayer
from recorder.simulators import AdzmqSimulator, OpenEphysSimulator
from recorder.store.reader import RunReader
from recorder.store.run_writer import RunWriter
from tests.helpers import free_port, local, run_cli, wait_for
from tests.recordhelp import running
from tests.replayhelp import client, quiet, recorded_frames, replaying, wait_clients


def pub_run(runs, started_ns: int, times_ms: list[float], port: int, tag: bytes) -> RunReader:
    """A run whose stream `main` was recorded by a SUB connected to `port` (served by a PUB
    binding there); message i is `tag + i`, received `times_ms[i]` after `started_ns`."""
    w = RunWriter(runs, name=tag.decode(), started_ns=started_ns)
    s = w.add_stream(
        "main", protocol="raw", endpoint=local(port), socket_type="SUB", role="connect"
    )
    for i, t in enumerate(times_ms):
        s.append(started_ns + int(t * 1e6), [tag + b"%d" % i])
    w.close()
    return RunReader(w.path)


def collect(socks: dict[str, zmq.Socket], n: int) -> list[tuple[str, float, list[bytes]]]:
    """n messages from any of the sockets: (which, arrival perf_counter, frames)."""
    poller = zmq.Poller()
    for s in socks.values():
        poller.register(s, zmq.POLLIN)
    name_of = {s: k for k, s in socks.items()}
    out: list[tuple[str, float, list[bytes]]] = []
    while len(out) < n:
        ready = dict(poller.poll(10_000))
        assert ready, f"got {len(out)} of {n} messages, then nothing for 10 s"
        now = time.perf_counter()
        for s in ready:
            while len(out) < n and s.poll(0):
                out.append((name_of[s], now, s.recv_multipart()))
    return out


def serve_together(ctx, runs: list[RunReader], n: int, **kwargs):
    """Replay the runs together, one SUB per run on a free port; what arrived, in order."""
    ports = {r.run_id: free_port() for r in runs}
    endpoints = {f"{rid}/main": local(p) for rid, p in ports.items()}
    with replaying([r.path for r in runs], endpoints=endpoints, paused=True, **kwargs) as rp:
        socks = {rid: client(ctx, zmq.SUB, local(p)) for rid, p in ports.items()}
        wait_clients(rp, len(runs))
        rp.resume()
        got = collect(socks, n)
        assert all(quiet(s, 100) for s in socks.values()), "more messages than recorded"
        assert rp.wait(10)
        status = rp.status()
    for s in socks.values():
        s.close()
    assert status["error"] is None and status["messages"] == n
    return got, status


def on_time(got, wanted_ms: list[float]) -> bool:
    """Arrivals (relative to the first) within a few ms of the wanted times: nothing early,
    three quarters within 5 ms, nothing 100 ms late (shared machines stall threads)."""
    offsets = [(t - got[0][1]) * 1000 - w for (_, t, _), w in zip(got, wanted_ms, strict=True)]
    mid = sorted(offsets)[len(offsets) // 2]
    errors = [o - mid for o in offsets]
    return (
        min(errors) > -8
        and sorted(map(abs, errors))[len(errors) * 3 // 4] < 5
        and (max(errors) < 100)
    )


def interleaved_check(ctx, runs, wanted: list[tuple[str, bytes, float]], **kwargs) -> dict:
    """The replay delivers `wanted` (run id, frame, ms on the combined clock) in that order and
    on time; best of three attempts, as the timing tests in test_replay.py."""
    attempts = []
    for _ in range(3):
        got, status = serve_together(ctx, runs, len(wanted), **kwargs)
        for r in runs:  # each subscriber gets its run's messages, in its order, every time
            assert [f for rid, _, f in got if rid == r.run_id] == [
                [f] for rid, f, _ in wanted if rid == r.run_id
            ]
        # across the two sockets, order and timing can only be seen when this thread is not
        # stalled (two messages waiting at one poll come out socket by socket)
        in_order = [(rid, f) for rid, _, f in got] == [(r, [f]) for r, f, _ in wanted]
        if in_order and on_time(got, [ms - wanted[0][2] for *_, ms in wanted]):
            return status
        attempts.append([(f[0], round((t - got[0][1]) * 1000, 1)) for _, t, f in got])
    raise AssertionError(f"off the recorded order or timing in every attempt (ms): {attempts}")


A_MS = [100.0 + 40 * i for i in range(6)]  # 100 140 ... 300
B_MS = [120.0 + 40 * i for i in range(6)]  # 20 ms after each of A's


@pytest.fixture
def two_runs(tmp_path):
    """Two runs started at the same moment, served on one port each (their recorded ports,
    which the tests map elsewhere)."""
    t0 = time.time_ns()
    a = pub_run(tmp_path, t0, A_MS, free_port(), b"a")
    b = pub_run(tmp_path, t0 + 5_000_000, [t - 5 for t in B_MS], free_port(), b"b")
    return a, b


@pytest.mark.timeout(90)
def test_two_runs_interleave_by_receive_time(ctx, two_runs):
    a, b = two_runs
    wanted = sorted(
        [(a.run_id, b"a%d" % i, t) for i, t in enumerate(A_MS)]
        + [(b.run_id, b"b%d" % i, t) for i, t in enumerate(B_MS)],
        key=lambda w: w[2],
    )
    assert [w[1] for w in wanted[:4]] == [b"a0", b"b0", b"a1", b"b1"]
    status = interleaved_check(ctx, [a, b], wanted)
    assert status["duration_s"] == pytest.approx(B_MS[-1] / 1000, abs=1e-3)


@pytest.mark.timeout(90)
def test_an_offset_shifts_one_run_on_the_clock(ctx, two_runs):
    a, b = two_runs
    wanted = sorted(
        [(a.run_id, b"a%d" % i, t) for i, t in enumerate(A_MS)]
        + [(b.run_id, b"b%d" % i, t + 250) for i, t in enumerate(B_MS)],
        key=lambda w: w[2],
    )
    assert [w[1] for w in wanted[4:8]] == [b"a4", b"a5", b"b0", b"b1"]  # b moved past a's end
    status = interleaved_check(ctx, [a, b], wanted, offsets={b.run_id: 0.25})
    assert status["duration_s"] == pytest.approx((B_MS[-1] + 250) / 1000, abs=1e-3)
    # a negative offset moves the clock's start: b's messages come first
    wanted = [(b.run_id, b"b%d" % i, t - 500) for i, t in enumerate(B_MS)]
    wanted += [(a.run_id, b"a%d" % i, t) for i, t in enumerate(A_MS)]
    status = interleaved_check(ctx, [a, b], wanted, offsets={b.run_id: -0.5})
    assert status["duration_s"] == pytest.approx((A_MS[-1] + 500 - 5) / 1000, abs=1e-3)


@pytest.mark.timeout(60)
def test_streams_two_runs_share_are_named_by_run(two_runs):
    a, b = two_runs
    rp = Replayer([a.path, b.path], endpoints={f"{a.run_id}/main": local(free_port()),
                                               f"{b.run_id}/main": local(free_port())})  # fmt: skip
    try:
        assert sorted(rp.plans) == sorted([f"{a.run_id}/main", f"{b.run_id}/main"])
    finally:
        rp.close()
    with pytest.raises(UsageError, match=r"stream 'main' is in runs .* say which"):
        Replayer([a.path, b.path], streams=["main"])
    with pytest.raises(UsageError, match="given twice"):
        Replayer([a.path, a.path])
    with pytest.raises(UsageError, match="--offset names run 'nope'"):
        Replayer([a.path, b.path], offsets={"nope": 1.0})


@pytest.mark.timeout(60)
def test_colliding_endpoints_are_refused_before_anything_binds(ctx, tmp_path):
    port = free_port()
    t0 = time.time_ns()
    a = pub_run(tmp_path, t0, [10, 20], port, b"a")
    b = pub_run(tmp_path, t0, [15, 25], port, b"b")
    with pytest.raises(UsageError) as refused:
        Replayer([a.path, b.path])
    text = str(refused.value)
    assert f"{a.run_id}/main" in text and f"{b.run_id}/main" in text
    assert f"tcp://*:{port}" in text and "--endpoint" in text
    # the port is still free: nothing bound it (a plain socket: its close is synchronous, while
    # a ZMQ socket's unbind finishes later in the I/O thread and the replay below could race it)
    with socket.socket() as probe:
        probe.bind(("", port))
    # serving one of the two elsewhere resolves the clash
    other = free_port()
    got, _ = serve_together_mapped(ctx, a, b, {f"{b.run_id}/main": local(other)}, port, other)
    assert sorted(f[0] for *_, f in got) == [b"a0", b"a1", b"b0", b"b1"]


def serve_together_mapped(ctx, a, b, endpoints, port_a, port_b):
    with replaying([a.path, b.path], endpoints=endpoints, paused=True, max_speed=True) as rp:
        assert rp.plans[f"{a.run_id}/main"].endpoint == f"tcp://*:{port_a}"
        socks = {"a": client(ctx, zmq.SUB, local(port_a)), "b": client(ctx, zmq.SUB, local(port_b))}
        wait_clients(rp, 2)
        rp.resume()
        got = collect(socks, 4)
        assert rp.wait(10)
    for s in socks.values():
        s.close()
    return got, None


@pytest.mark.timeout(60)
def test_control_planes_collide_too(tmp_path):
    from recorder.replay.plan import StreamPlan, check_collisions

    data = StreamPlan("a", "openephys", "PUB", "tcp://*:6000", True, {"heartbeat": "tcp://*:6001"})
    other = StreamPlan("b", "raw", "PUB", "tcp://127.0.0.1:6001", True)
    with pytest.raises(UsageError, match=r"streams a \(heartbeat\) and b would both bind"):
        check_collisions([data, other])
    apart = StreamPlan("c", "raw", "PUB", "tcp://127.0.0.2:6001", True)
    check_collisions([other, apart])  # two hosts, one port: no clash
    check_collisions([StreamPlan("d", "raw", "PUB", "tcp://*:*", True)] * 2)  # system's choice


def record_together(ctx, runs, sims: dict[str, object]) -> dict[str, RunReader]:
    """Two recorders at the same time, one simulator each; the finished runs by protocol."""
    recs = {}
    for protocol, sim in sims.items():
        recs[protocol] = Recording(
            runs, [SourceSpec(endpoint=sim.bind(), protocol=protocol)], count=sim.count,
            flush_interval=0.05,
        )  # fmt: skip
    for rec in recs.values():
        rec.start()
    with running(sims["openephys"]), running(sims["adzmq"]):
        wait_for(lambda: all(r.done for r in recs.values()), 30, "both recordings")
    for rec in recs.values():
        assert rec.finish() == "complete"
    return {p: RunReader(rec.run.path) for p, rec in recs.items()}


@pytest.mark.timeout(120)
def test_two_simulators_recorded_side_by_side_replay_in_recorded_order(ctx, tmp_path):
    sims = {
        "openephys": OpenEphysSimulator(
            "tcp://127.0.0.1:*", rate=100, count=30, wait_for_subscriber=True, ctx=ctx,
            n_channels=2, n_samples=16,
        ),
        "adzmq": AdzmqSimulator(
            "tcp://127.0.0.1:*", rate=70, count=21, wait_for_subscriber=True, ctx=ctx,
            height=8, width=8,
        ),
    }  # fmt: skip
    runs = record_together(ctx, tmp_path, sims)
    both = list(runs.values())
    recorded = sorted(
        (m.recv_ns, r.run_id, tuple(bytes(f) for f in m.frames)) for r in both for m in r.messages()
    )
    first, last = recorded[0][0], recorded[-1][0]
    assert {rid for _, rid, _ in recorded[:20]} == {r.run_id for r in both}, "runs overlap"
    attempts = []
    for _ in range(3):  # order and spacing across two sockets need this thread not stalled
        got, status = serve_together(ctx, both, len(recorded))
        for r in both:  # each subscriber gets its run's messages, byte for byte
            assert [f for rid, _, f in got if rid == r.run_id] == recorded_frames(r.path)
        assert status["duration_s"] >= (last - first) / 1e9
        # the interleaving follows the receive times: messages recorded more than 3 ms apart
        # arrive in that order, and the arrivals keep the recorded spacing
        arrived = {(rid, tuple(f)): k for k, (rid, _, f) in enumerate(got)}
        assert len(arrived) == len(got)
        swapped = [
            (f1[:1], f2[:1])
            for (t1, r1, f1), (t2, r2, f2) in itertools.pairwise(recorded)
            if r1 != r2 and t2 - t1 > 3_000_000 and arrived[r1, f1] > arrived[r2, f2]
        ]
        span_ms = (got[-1][1] - got[0][1]) * 1000
        if not swapped and abs(span_ms - (last - first) / 1e6) < 60:
            return
        attempts.append((swapped, span_ms))
    raise AssertionError(f"out of recorded order or spacing: {attempts}")


@pytest.mark.timeout(60)
def test_cli_replays_several_runs_and_refuses_a_clash(tmp_path):
    data = tmp_path / "data"
    runs = data / "runs"
    runs.mkdir(parents=True)
    port = free_port()
    t0 = time.time_ns()
    a = pub_run(runs, t0, [10, 20], port, b"a")
    b = pub_run(runs, t0, [15, 25], port, b"b")
    proc = run_cli("replay", a.run_id, b.run_id, "--data", data, "-q")
    assert proc.returncode != 0
    assert "would both bind" in proc.stderr and f"--endpoint {b.run_id}/main=" in proc.stderr
    proc = run_cli(
        "replay", a.run_id, b.run_id[:20], "--data", data, "-q", "--max-speed",
        "--endpoint", f"{b.run_id}/main={local(free_port())}", "--offset", f"{b.run_id[:20]}=2",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"{a.run_id}/main: PUB on tcp://*:{port}" in proc.stderr
    proc = run_cli("replay", a.run_id, "--data", data, "--offset", f"{b.run_id}=1")
    assert proc.returncode != 0 and "not replayed" in proc.stderr
