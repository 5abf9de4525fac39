"""The real Karabo tools around the replay: karabo_bridge.Client (REQ, SUB, PULL) receives from
our replay exactly the trains the recorder took from `karabo-bridge-server-sim` and from
`karabo-bridge-serve-files` (PyPI karabo-bridge and extra-data), in every socket pairing.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import zmq
from karabo_bridge import Client
from karabo_bridge.serializer import deserialize

from recorder.recording.recording import SourceSpec
from tests.helpers import free_port, local, wait_for
from tests.karabotools import start_tool, write_mock_run
from tests.recordhelp import record
from tests.replayhelp import (
    client,
    quiet,
    recorded_frames,
    replaying,
    request,
    wait_clients,
)

#: server socket -> (recorder socket, replay's served socket, karabo_bridge.Client socket)
PAIRS = {
    "REP": ("REQ", "REP", "REQ"),
    "PUB": ("SUB", "PUB", "SUB"),
    "PUSH": ("PULL", "PUSH", "PULL"),
}


@pytest.fixture
def tools():
    procs: list[subprocess.Popen] = []

    def start(args: list[str]) -> tuple[subprocess.Popen, int]:
        proc, port = start_tool(args)
        procs.append(proc)
        return proc, port

    yield start
    for proc in procs:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)
    proc.stdout.close()


@pytest.fixture(scope="module")
def mock_run(tmp_path_factory):
    return write_mock_run(tmp_path_factory.mktemp("karabo"))


def assert_same(a, b, where: str = "") -> None:
    """Deep equality of what karabo_bridge decodes: dicts, lists, arrays (dtype and shape)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        assert isinstance(a, np.ndarray) and isinstance(b, np.ndarray), where
        assert (a.dtype, a.shape) == (b.dtype, b.shape), where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b and type(a) is type(b), (where, a, b)


def train_id(meta: dict) -> int:
    return min(m["timestamp.tid"] for m in meta.values())


def record_from_tool(runs, port: int, server_socket: str, n: int):
    recorder_socket = PAIRS[server_socket][0]
    spec = SourceSpec(endpoint=local(port), protocol="karabo", socket_type=recorder_socket)
    path = record(runs, spec, n, timeout=40)
    stored = recorded_frames(path)
    assert len(stored) == n
    return path, [deserialize(frames) for frames in stored]


def replay_to_client(ctx, path, n: int, client_socket: str, **kwargs) -> list[tuple[dict, dict]]:
    """Serve the run on a free port; a real karabo_bridge.Client takes n trains."""
    port = free_port()
    with replaying(path, endpoints={"": local(port)}, paused=True, max_speed=True, **kwargs) as rp:
        c = Client(local(port), sock=client_socket, timeout=30, context=ctx)
        try:
            wait_clients(rp)
            rp.resume()
            trains = [c.next() for _ in range(n)]
            wait_for(lambda: rp.status()["messages"] == n, 5, "the replay to count its trains")
            if client_socket != "REQ":  # PUB/PUSH end after the last train
                assert rp.wait(10)
                assert quiet(c._socket, 200), "more trains than recorded"
        finally:
            c._socket.close(linger=0)
        assert rp.status()["error"] is None
    return trains


def assert_same_trains(got, want) -> None:
    assert [train_id(m) for _, m in got] == [train_id(m) for _, m in want]
    for k, ((gd, gm), (wd, wm)) in enumerate(zip(got, want, strict=True)):
        assert_same(gm, wm, f"train {k} metadata")
        assert_same(gd, wd, f"train {k} data")


@pytest.mark.timeout(90)
@pytest.mark.parametrize("protocol", ["2.2", "1.0"])
@pytest.mark.parametrize("server_socket", ["REP", "PUB", "PUSH"])
def test_server_sim_trains_reach_karabo_client_through_record_and_replay(
    tools, ctx, tmp_path, server_socket, protocol
):
    proc, port = tools(
        ["karabo-bridge-server-sim", "*", "-z", server_socket, "-p", protocol,
         "-d", "AGIPDModule", "-r"]
    )  # fmt: skip
    n = 3
    path, want = record_from_tool(tmp_path, port, server_socket, n)
    stop(proc)  # the live source is gone: only the replay serves now
    ids = [train_id(m) for _, m in want]
    assert ids == sorted(set(ids))
    got = replay_to_client(ctx, path, n, PAIRS[server_socket][2])
    assert_same_trains(got, want)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("server_socket", ["REP", "PUSH"])
def test_serve_files_trains_reach_karabo_client_through_record_and_replay(
    tools, ctx, tmp_path, mock_run, server_socket
):
    """serve-files sends each train of the run once (PUB would drop them before the recorder
    subscribed, so it is served as PUB by the replay below instead)."""
    proc, port = tools(
        ["karabo-bridge-serve-files", str(mock_run), "tcp://127.0.0.1:*", "-z", server_socket]
    )
    path, want = record_from_tool(tmp_path, port, server_socket, 4)
    stop(proc)
    assert [train_id(m) for _, m in want] == [10000, 10001, 10002, 10003]
    image = want[0][0]["FXE_XAD_GEC/CAM/CAMERA:daqOutput"]["data.image.pixels"]
    assert image.shape == (255, 1024) and image.dtype == np.uint16
    got = replay_to_client(ctx, path, 4, PAIRS[server_socket][2])
    assert_same_trains(got, want)
    # and converted (--socket): a REQ or PULL recording served to SUB, PULL and REQ clients
    for served, client_socket in (("PUB", "SUB"), ("PUSH", "PULL"), ("REP", "REQ")):
        got = replay_to_client(ctx, path, 4, client_socket, sockets={"main": served})
        assert_same_trains(got, want)


@pytest.mark.timeout(90)
def test_replay_answers_bad_requests_like_the_real_server(tools, ctx, tmp_path):
    proc, port = tools(["karabo-bridge-server-sim", "*", "-z", "REP", "-d", "AGIPDModule", "-r"])
    real = client(ctx, zmq.REQ, local(port))
    bad = b"give me data"
    real_reply = request(real, [bad], timeout=30)
    real.close()
    path, want = record_from_tool(tmp_path, port, "REP", 2)
    stop(proc)
    replay_port = free_port()
    with replaying(path, endpoints={"": local(replay_port)}) as rp:
        req = client(ctx, zmq.REQ, local(replay_port))
        assert request(req, [bad]) == real_reply == [b"Error: bad request give me data"]
        trains = [deserialize(request(req, [b"next"])) for _ in range(2)]
        assert rp.status()["error"] is None
    assert_same_trains(trains, want)
