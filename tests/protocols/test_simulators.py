"""The simulators' common base: every protocol's simulator binds once, serves a real client,
runs on its own thread and leaves nothing open behind it."""

from __future__ import annotations

import time

import pytest
import zmq

from recorder import protocols
from recorder.errors import UsageError
from recorder.simulators import RawSimulator, make_simulator, simulator_names
from tests.helpers import wait_for

LOOPBACK = "tcp://127.0.0.1:*"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", simulator_names())
def test_every_simulator_serves_a_client_from_its_thread(ctx, name):
    d = protocols.get(name)
    sim = make_simulator(name, LOOPBACK, rate=200)
    endpoint = sim.start()
    try:
        assert sim.bind() == endpoint == sim.bound_endpoint and sim.ready.is_set()
        if d.default_socket == "SUB":
            sock = ctx.socket(zmq.SUB)
            sock.subscribe(b"")
        else:  # a REP server (or service): ask it
            sock = ctx.socket(zmq.REQ)
        sock.linger = 0
        sock.connect(endpoint)
        if sock.type == zmq.REQ:
            sock.send(b"next")
        assert sock.poll(10_000), f"{name} simulator sent nothing"
        frames = sock.recv_multipart()
        if sock.type == zmq.SUB:
            d.codec().decode(frames)  # a real message of the protocol, not a reject
        assert frames
        sock.close()
    finally:
        sim.stop(10)
    assert not sim.running and sim.error is None
    again = ctx.socket(zmq.PUB)  # closed with the simulator: the port is free again at once
    again.linger = 0
    again.bind(endpoint)
    again.close()


@pytest.mark.timeout(30)
def test_run_to_count_ends_the_thread_by_itself():
    sim = RawSimulator(rate=0, count=3)
    sim.start()
    deadline = time.monotonic() + 10
    while sim.running and time.monotonic() < deadline:
        time.sleep(0.005)
    assert not sim.running and sim.sent == 3 and sim.error is None
    assert sim.stop() == 3


@pytest.mark.timeout(30)
def test_failed_bind_leaves_nothing_open(ctx):
    holder = ctx.socket(zmq.PUB)
    holder.linger = 0
    holder.bind(LOOPBACK)
    taken = holder.getsockopt_string(zmq.LAST_ENDPOINT)
    try:
        sim = make_simulator("karabo", taken)
        with pytest.raises(zmq.ZMQError):
            sim.bind()
        assert sim.bound_endpoint is None and not sim.ready.is_set()
        holder.close()  # zmq releases the port in its I/O thread, a moment later

        def rebind() -> str | None:
            try:
                return sim.bind()
            except zmq.ZMQError:
                return None

        # nothing of the failed try is in the way once the holder's port is free
        assert wait_for(rebind, 10, "the port to be free again") == taken
        sim.close()
    finally:
        holder.close()


def test_unknown_simulator_and_option():
    with pytest.raises(UsageError, match="no simulator for 'nope'"):
        make_simulator("nope")
    with pytest.raises(UsageError, match="bad option for the raw simulator"):
        make_simulator("raw", height=3)


def test_default_ports_do_not_collide_with_each_other_or_the_readme():
    """`recorder simulate X` with no --bind must not take a port the README's examples give
    something else (regression: reqrep and pyMultiVideo defaulted to the reqrep proxy's 5555,
    and pyMultiVideo's back channel on 5556 to Open Ephys' data port)."""
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    listen = {int(p) for p in re.findall(r"--listen 'tcp://\*:(\d+)'", readme)}
    assert listen, "the README's reqrep proxy example moved"
    taken: dict[int, str] = {}
    for name in simulator_names():
        sim = make_simulator(name)
        match = re.match(r"tcp://[^:]+:(\d+|\*)", sim.endpoint)
        assert match, sim.endpoint
        if match[1] == "*":
            continue  # a random port
        port = int(match[1])
        span = 2 if name in ("openephys", "pymultivideo") else 1  # a control socket on + 1
        for p in range(port, port + span):
            assert p not in listen, f"{name} simulator takes the README's proxy port {p}"
            assert p not in taken, f"{name} and {taken.get(p)} simulators both take {p}"
            taken[p] = name
