"""`--endpoint auto`: a replay on free loopback ports, reported once bound, so a replay never
fails because the original port is taken. Control planes keep their place next to the data
port (the Open Ephys heartbeat REP on port + 1), as the protocols' own clients expect."""

from __future__ import annotations

import subprocess

import pytest
import zmq

from recorder.endpoints import parse_tcp
from recorder.errors import UsageError
from recorder.protocols.openephys import heartbeat_request
from recorder.recording.recording import SourceSpec
from recorder.replay import Replayer
from recorder.replay.plan import AUTO_BIND
from recorder.simulators import OpenEphysSimulator
from tests.helpers import CLI, end_process, wait_for
from tests.recordhelp import record, running
from tests.replayhelp import client, make_run, receive, replaying, request, wait_clients


def port_of(endpoint: str) -> int:
    tcp = parse_tcp(endpoint)
    assert tcp is not None and tcp.host == "127.0.0.1" and tcp.port is not None, endpoint
    return tcp.port


def taken_port(ctx: zmq.Context, endpoint: str) -> zmq.Socket:
    """Something else already listening where a recording's server was."""
    sock = ctx.socket(zmq.PULL)
    sock.linger = 0
    sock.bind(endpoint)
    return sock


@pytest.mark.timeout(30)
def test_auto_binds_free_loopback_ports_where_the_recorded_one_is_taken(ctx, tmp_path):
    path = make_run(
        tmp_path, [0, 1, 2, 3], owner=["a", "b", "a", "b"],
        streams={"a": ("PULL", "connect"), "b": ("PULL", "connect")},
    )  # fmt: skip
    blocker = taken_port(ctx, "tcp://127.0.0.1:5999")  # make_run records port 5999
    try:
        with pytest.raises(UsageError, match="already in use"), replaying(path, streams=["a"]):
            pass
        with replaying(path, endpoints={"": "auto"}, paused=True) as rp:
            endpoints = {n: p.endpoint for n, p in rp.plans.items()}
            assert len({port_of(e) for e in endpoints.values()}) == 2
            pulls = {n: client(ctx, zmq.PULL, e) for n, e in endpoints.items()}
            wait_clients(rp, 2)
            rp.resume()
            assert receive(pulls["a"], 2) == [[b"0"], [b"2"]]
            assert receive(pulls["b"], 2) == [[b"1"], [b"3"]]
    finally:
        blocker.close()


@pytest.mark.timeout(30)
def test_a_stream_given_its_own_endpoint_keeps_it_next_to_auto(ctx, tmp_path):
    path = make_run(
        tmp_path, [0, 1], owner=["a", "b"],
        streams={"a": ("PULL", "connect"), "b": ("PULL", "connect")},
    )  # fmt: skip
    fixed = "tcp://127.0.0.1:*"
    rp = Replayer(path, endpoints={"": "auto", "b": fixed})
    try:
        assert rp.plans["a"].auto and rp.plans["a"].endpoint == AUTO_BIND
        assert not rp.plans["b"].auto and rp.plans["b"].endpoint == fixed
    finally:
        rp.close()


@pytest.mark.timeout(30)
def test_auto_cannot_be_a_controlled_drivers_port(tmp_path):
    path = make_run(tmp_path, [0, 1], protocol="adzmq", streams={"main": ("SUB", "connect")})
    with pytest.raises(UsageError, match=r"--controlled .*auto"):
        Replayer(path, endpoints={"": "auto"}, controlled=True)


@pytest.mark.timeout(60)
def test_open_ephys_auto_keeps_the_heartbeat_on_data_port_plus_one(ctx, tmp_path):
    n = 12
    sim = OpenEphysSimulator(
        "tcp://127.0.0.1:*", rate=1000, count=n, wait_for_subscriber=True, ctx=ctx,
        n_channels=2, n_samples=32,
    )  # fmt: skip
    recorded = sim.bind()
    with running(sim):
        path = record(tmp_path, SourceSpec(endpoint=recorded, protocol="openephys"), n)
    with replaying(path, endpoints={"": "auto"}, paused=True) as rp:
        plan = rp.plans["main"]
        port = port_of(plan.endpoint)
        assert plan.controls == {"heartbeat": f"tcp://127.0.0.1:{port + 1}"}
        req = client(ctx, zmq.REQ, f"tcp://127.0.0.1:{port + 1}")
        assert request(req, [heartbeat_request("app", "u")]) == [b"heartbeat received"]
        sub = client(ctx, zmq.SUB, plan.endpoint)
        wait_clients(rp)
        rp.resume()
        assert receive(sub, n) == [sim.message(i) for i in range(n)]


@pytest.mark.timeout(60)
def test_cli_prints_where_an_auto_replay_serves_and_a_client_gets_the_run(ctx, data_dir):
    path = make_run(data_dir / "runs", [0, 1, 2])
    blocker = taken_port(ctx, "tcp://127.0.0.1:5999")
    proc = subprocess.Popen(
        [*CLI, "replay", path.name, "--data", str(data_dir), "--endpoint", "auto", "--paused",
         "-q"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdin is not None
        line = wait_for(proc.stdout.readline, 30, "the serving line")
        assert line.startswith("serving main on tcp://127.0.0.1:"), line
        pull = client(ctx, zmq.PULL, line.split(" on ", 1)[1].strip())
        proc.stdin.write("r\n")
        proc.stdin.flush()
        assert receive(pull, 3) == [[b"0"], [b"1"], [b"2"]]
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
    finally:
        end_process(proc)
        blocker.close()


@pytest.mark.timeout(60)
def test_an_event_broadcaster_replay_binds_no_heartbeat_socket(ctx, tmp_path):
    """The plugin never had one: its replay is one PUB, also on an auto port."""
    n = 6
    sim = OpenEphysSimulator(
        "tcp://127.0.0.1:*", plugin="event-broadcaster", rate=0, count=n,
        wait_for_subscriber=True, ctx=ctx, ttl_every=1,
    )  # fmt: skip
    recorded = sim.bind()
    with running(sim):
        path = record(tmp_path, SourceSpec(endpoint=recorded, protocol="openephys"), n)
    with replaying(path, endpoints={"": "auto"}, paused=True) as rp:
        plan = rp.plans["main"]
        assert plan.controls == {}
        sub = client(ctx, zmq.SUB, plan.endpoint)
        wait_clients(rp)
        rp.resume()
        assert receive(sub, n) == [sim.message(i) for i in range(n)]


def test_a_taken_or_missing_port_plus_one_is_not_used_for_a_control_plane(ctx):
    from recorder.replay.control_planes import _next_port, _port_free

    sock = ctx.socket(zmq.REP)
    sock.linger = 0
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    try:
        assert not _port_free(f"tcp://127.0.0.1:{port}")
    finally:
        sock.close()
    assert _next_port("tcp://127.0.0.1:65535") is None
    assert _next_port("tcp://127.0.0.1:5556") == "tcp://127.0.0.1:5557"
