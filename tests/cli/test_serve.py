"""`recorder serve --demo` as a user runs it: one command, a sign-in link, then over plain HTTP
record a simulator, stop, tag, replay, and receive the replayed bytes with a real ZMQ client."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import psutil
import pytest
import zmq

from recorder.store.reader import RunReader
from tests.clihelp import serve_demo
from tests.helpers import free_port

DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy from the env


class Api:
    def __init__(self, base: str, token: str):
        self.base, self.token = base, token

    def call(self, method: str, path: str, body=None) -> tuple[int, dict]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + "/api/v1" + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with DIRECT.open(req, timeout=20) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else {}
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def wait(self, path: str, pred, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            status, body = self.call("GET", path)
            if status == 200 and pred(body):
                return body
            assert time.monotonic() < deadline, f"timed out on {path}: {status} {body}"
            time.sleep(0.05)


@pytest.fixture
def served(tmp_path):
    """`recorder serve --demo` on a free port; yields (Api, data folder, process)."""
    with serve_demo(tmp_path) as (link, proc):
        parts = urlsplit(link)
        assert parts.path == "/login" and parts.hostname == "127.0.0.1", link
        api = Api(f"http://{parts.netloc}", parts.fragment.removeprefix("token="))
        yield api, tmp_path / "data", proc


@pytest.mark.timeout(180)
def test_serve_record_stop_tag_replay_over_http(served):
    api, data, proc = served
    status, st = api.call("GET", "/status")
    assert status == 200 and st["manager"]["alive"]
    names = [s["name"] for s in api.call("GET", "/sources")[1]["sources"]]
    for protocol in ("openephys", "adzmq", "pymultivideo", "karabo", "reqrep"):
        assert f"demo-{protocol}" in names

    status, rec = api.call("POST", "/recordings", {"sources": ["demo-adzmq"], "name": "e2e"})
    assert status == 201, rec
    live = api.wait(f"/recordings/{rec['id']}", lambda j: j["messages"] >= 25)
    assert live["state"] == "running" and live["rate_bytes_s"] >= 0
    assert api.call("POST", f"/recordings/{rec['id']}/stop")[0] == 200
    done = api.wait(f"/recordings/{rec['id']}", lambda j: j["state"] == "stopped")
    run_id = done["run_id"]
    assert api.call("POST", f"/runs/{run_id}/tags", {"tag": "e2e"})[1]["tags"] == ["e2e"]
    assert [r["run_id"] for r in api.call("GET", "/runs?tag=e2e")[1]["runs"]] == [run_id]

    with RunReader(data / "runs" / run_id) as reader:
        want = [[bytes(f) for f in m.frames] for m in reader.messages()]
    assert len(want) == done["messages"] >= 25

    # Replay as the original publisher did (PUB), looping, to a real SUB client. A subscriber
    # may miss the first messages while it joins, so compare one whole pass from message 0.
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    body = {"run_id": run_id, "endpoints": {"demo-adzmq": endpoint}, "loop": 0, "speed": 20}
    status, rep = api.call("POST", "/replays", body)
    assert status == 201, rep
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(endpoint)
    try:
        got: list[list[bytes]] = []
        deadline = time.monotonic() + 60
        while len(got) < len(want):
            assert time.monotonic() < deadline, f"received {len(got)} of a pass"
            if not sub.poll(1000):
                continue
            msg = sub.recv_multipart()
            if got or msg == want[0]:
                got.append(msg)
        assert got == want
        playing = api.wait(f"/replays/{rep['id']}", lambda j: j["clients"] >= 1)
        assert playing["state"] == "running" and playing["loop"] >= 1
    finally:
        sub.close(linger=0)
        ctx.term()
    assert api.call("POST", f"/replays/{rep['id']}/stop")[0] == 200
    api.wait(f"/replays/{rep['id']}", lambda j: j["state"] == "stopped")

    # Ctrl-C (SIGTERM) stops everything: the web server, the manager and its workers.
    serve = psutil.Process(proc.pid)
    family = serve.children(recursive=True)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    _, alive = psutil.wait_procs(family, timeout=30)
    assert not alive, [p.cmdline() for p in alive]


@pytest.mark.parametrize("spares", ["9", "-1", "many"])
def test_serve_refuses_a_spares_count_out_of_range_in_one_line(spares, tmp_path):
    from tests.helpers import run_cli

    r = run_cli("serve", "--spares", spares, "--data", tmp_path / "d")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "--spares" in r.stderr
    assert not (tmp_path / "d").exists()
