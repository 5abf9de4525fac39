"""Replaying over the API: a real worker serves a recorded run to a real ZMQ client, byte for
byte, and obeys pause, resume, seek, speed, step and stop."""

from __future__ import annotations

import socket
import time

import pytest
import zmq

from recorder.store.reader import RunReader
from tests.web.webhelp import API, recorded_run, wait_json


def free_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def stored(data, run_id) -> list[list[bytes]]:
    with RunReader(data / "runs" / run_id) as reader:
        return [[bytes(f) for f in m.frames] for m in reader.messages()]


@pytest.fixture
def run_id(data):
    return recorded_run(data, "adzmq", 30)


@pytest.mark.timeout(60)
def test_replay_to_a_pull_client_byte_for_byte(client, manager, data, run_id, ctx):
    endpoint = free_endpoint()
    r = client.post(f"{API}/replays", json={
        "run_id": run_id, "endpoints": {"main": endpoint}, "sockets": {"main": "PUSH"},
        "max_speed": True})  # fmt: skip
    assert r.status_code == 201, r.get_json()
    job_id = r.get_json()["id"]
    pull = ctx.socket(zmq.PULL)
    pull.connect(endpoint)  # PUSH holds messages until a peer is connected: none are lost
    got = []
    want = stored(data, run_id)
    while len(got) < len(want):
        assert pull.poll(20_000), f"replay stalled after {len(got)} messages"
        got.append(pull.recv_multipart())
    assert got == want
    done = wait_json(client, f"{API}/replays/{job_id}", lambda j: j["state"] == "finished")
    assert done["messages"] == len(want) and done["error"] is None
    assert done["endpoints"] == {"main": endpoint}


@pytest.mark.timeout(60)
def test_replay_controls(client, manager, data, run_id, ctx):
    endpoint = free_endpoint()
    r = client.post(f"{API}/replays", json={
        "run_id": run_id, "endpoints": {"main": endpoint}, "paused": True, "loop": 0})  # fmt: skip
    job_id = r.get_json()["id"]
    url = f"{API}/replays/{job_id}"
    paused = wait_json(client, url, lambda j: j["state"] == "paused")
    assert paused["desired"] == "paused" and paused["messages"] == 0
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(endpoint)
    wait_json(client, url, lambda j: j["clients"] == 1, what="the client to show")

    # Step while paused: exactly the next messages go out.
    assert client.post(f"{url}/step", json={"n": 2}).status_code == 200
    wait_json(client, url, lambda j: j["messages"] == 2, what="two stepped messages")
    assert client.post(f"{url}/resume").get_json()["desired"] == "running"
    playing = wait_json(client, url, lambda j: j["state"] == "running" and j["messages"] > 5)
    assert playing["position_s"] > 0 and playing["duration_s"] > 0
    assert sub.poll(10_000)
    assert client.post(f"{url}/speed", json={"speed": 4}).status_code == 200
    wait_json(client, url, lambda j: j["speed"] == 4, what="the new speed")
    assert client.post(f"{url}/pause").status_code == 200
    wait_json(client, url, lambda j: j["state"] == "paused")
    assert client.post(f"{url}/seek", json={"t_s": 0}).status_code == 200
    wait_json(client, url, lambda j: j["position_s"] == 0, what="the seek")
    # Bad values never reach the worker.
    assert client.post(f"{url}/speed", json={"speed": 0}).status_code == 422
    assert client.post(f"{url}/seek", json={"t_s": -1}).status_code == 422

    assert client.post(f"{url}/stop").status_code == 200
    done = wait_json(client, url, lambda j: j["state"] == "stopped")
    assert done["error"] is None
    assert client.post(f"{url}/pause").status_code == 409
    assert client.post(f"{url}/stop").status_code == 200
    assert [x["id"] for x in client.get(f"{API}/replays").get_json()["replays"]] == [job_id]


def test_replay_requests_are_checked_against_the_run(client, data, run_id):
    def post(body):
        return client.post(f"{API}/replays", json={"run_id": run_id, **body})

    assert (
        client.post(f"{API}/replays", json={"run_id": "20000101-000000-000000"}).status_code == 404
    )
    assert client.post(f"{API}/replays", json={"run_id": "../../etc"}).status_code == 422
    assert post({"streams": ["nope"]}).status_code == 404
    assert post({"endpoints": {"other": "tcp://127.0.0.1:5000"}}).status_code == 400
    assert post({"endpoints": {"main": "tcp://nowhere"}}).status_code == 400
    assert post({"speed": 2, "max_speed": True}).status_code == 400
    assert post({"start_s": 2, "end_s": 1}).status_code == 400
    assert client.get(f"{API}/replays").get_json()["replays"] == []
    assert client.get(f"{API}/replays/rep-000000000000").status_code == 404


@pytest.mark.timeout(60)
def test_replay_of_a_busy_endpoint_fails_with_the_reason(client, manager, data, run_id, ctx):
    """The request itself fails, not a job that fails a moment after a 201."""
    holder = ctx.socket(zmq.PUB)
    holder.bind("tcp://127.0.0.1:*")
    endpoint = holder.getsockopt_string(zmq.LAST_ENDPOINT)
    r = client.post(f"{API}/replays", json={"run_id": run_id, "endpoints": {"main": endpoint}})
    assert r.status_code == 409, r.get_json()
    error = r.get_json()["error"]
    assert error["code"] == "replay_failed" and "in use" in error["message"], error
    failed = client.get(f"{API}/replays/{error['details']['id']}").get_json()
    assert failed["state"] == "failed" and "in use" in failed["error"]


@pytest.mark.timeout(60)
def test_an_auto_replay_answers_with_its_bound_endpoints(client, manager, data, run_id, ctx):
    """`endpoint: auto` on a taken recorded port: the answer names the free port bound, and a
    subscriber connecting there gets the whole run."""
    recorded = stored(data, run_id)
    with RunReader(data / "runs" / run_id) as reader:
        holder = ctx.socket(zmq.PUB)
        holder.bind(reader.stream("main").endpoint)  # where the original server was
    r = client.post(f"{API}/replays", json={"run_id": run_id, "endpoint": "auto", "paused": True})
    assert r.status_code == 201, r.get_json()
    out = r.get_json()
    assert out["bound"] is True and out["state"] == "paused" and "note" not in out, out
    [(stream, endpoint)] = out["endpoints"].items()
    assert stream == "main" and endpoint.startswith("tcp://127.0.0.1:"), endpoint
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(endpoint)
    url = f"{API}/replays/{out['id']}"
    wait_json(client, url, lambda j: j["clients"] == 1, what="the subscriber to show")
    assert client.post(f"{url}/resume").status_code == 200
    got = []
    while len(got) < len(recorded):
        assert sub.poll(20_000), f"replay stalled after {len(got)} messages"
        got.append(sub.recv_multipart())
    assert got == recorded
    assert wait_json(client, url, lambda j: j["state"] == "finished")["endpoints"] == {
        "main": endpoint
    }


def test_without_a_manager_a_replay_is_answered_at_once_and_says_why(client, data, run_id):
    started = time.monotonic()
    r = client.post(f"{API}/replays", json={"run_id": run_id, "endpoint": "auto"})
    assert time.monotonic() - started < 5
    out = r.get_json()
    assert r.status_code == 201 and out["bound"] is False and out["endpoints"] == {}, out
    assert out["state"] == "pending" and f"/replays/{out['id']}" in out["note"]


@pytest.mark.timeout(60)
def test_reqrep_reply_options_reach_the_worker(client, manager, data, ctx):
    """Defaults: an exchange recorded without a reply gets none; the old behaviour on request."""
    from recorder.protocols.reqrep import pack_pair
    from recorder.replay.responders import DEFAULT_UNKNOWN_REPLY
    from tests.replayhelp import make_run

    pairs = [pack_pair([b"a"], [b"1"]), pack_pair([b"b"], []), pack_pair([b"c"], [b"3"])]
    path = make_run(data / "runs", [0, 1, 2], pairs, streams={"main": ("REP", "bind")},
                    protocol="reqrep")  # fmt: skip

    def ask(body, requests, want):
        endpoint = free_endpoint()
        r = client.post(f"{API}/replays", json={
            "run_id": path.name, "endpoints": {"main": endpoint}, **body})  # fmt: skip
        assert r.status_code == 201, r.get_json()
        got = []
        for req, expected in zip(requests, want, strict=True):
            sock = ctx.socket(zmq.REQ)
            sock.linger = 0
            sock.connect(endpoint)
            sock.send(req)
            got.append(sock.recv() if sock.poll(20_000 if expected else 1500) else None)
            sock.close()
        client.post(f"{API}/replays/{r.get_json()['id']}/stop")
        return got

    want = [b"1", None, None]
    assert ask({}, [b"a", b"b", b"a"], want) == want
    old = {"unanswered": "unknown-reply", "cycle": True, "reply_timing": "immediate"}
    want = [b"1", DEFAULT_UNKNOWN_REPLY, b"1"]
    assert ask(old, [b"a", b"b", b"a"], want) == want


def two_runs(data):
    """Two runs recorded side by side, both with a stream `main` from tcp://127.0.0.1:5999
    (served by a PUSH binding there): names and endpoints clash."""
    from tests.replayhelp import make_run

    a = make_run(data / "runs", [0, 20, 40], [[b"a0"], [b"a1"], [b"a2"]])
    b = make_run(data / "runs", [10, 30, 50], [[b"b0"], [b"b1"], [b"b2"]])
    return a.name, b.name


@pytest.mark.timeout(60)
def test_several_runs_on_one_clock(client, manager, data, ctx):
    a, b = two_runs(data)
    r = client.post(f"{API}/replays", json={"run_id": a, "with_runs": [b]})
    assert r.status_code == 400 and "would both bind" in r.get_json()["error"]["message"]
    ends = {f"{a}/main": free_endpoint(), f"{b}/main": free_endpoint()}
    r = client.post(f"{API}/replays", json={
        "run_id": a, "with_runs": [b], "endpoints": ends, "offsets": {b: 1.0},
        "max_speed": True})  # fmt: skip
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["run_id"] == a
    pulls = {}
    for key, endpoint in ends.items():
        pulls[key] = ctx.socket(zmq.PULL)
        pulls[key].connect(endpoint)
    for key, tag in ((f"{a}/main", b"a"), (f"{b}/main", b"b")):
        got = []
        for _ in range(3):
            assert pulls[key].poll(20_000), f"{key}: replay stalled after {got}"
            got.append(pulls[key].recv_multipart())
        assert got == [[tag + b"%d" % i] for i in range(3)]
    url = f"{API}/replays/{r.get_json()['id']}"
    job = wait_json(client, url, lambda j: j["state"] == "finished")
    assert job["endpoints"] == ends and job["messages"] == 6
    assert job["params"]["with_runs"] == [b] and job["params"]["offsets"] == {b: 1.0}
    with RunReader(data / "runs" / a) as ra, RunReader(data / "runs" / b) as rb:
        b_last = rb.started_ns + 50_000_000 + 1_000_000_000  # shifted by 1 s
        assert job["duration_s"] == pytest.approx((b_last - ra.started_ns) / 1e9, abs=1e-3)


def test_several_runs_requests_are_checked(client, data):
    a, b = two_runs(data)

    def post(body):
        return client.post(f"{API}/replays", json=body)

    assert post({"with_runs": [b]}).status_code == 422
    assert post({"run_id": a, "with_runs": [a]}).status_code == 400
    assert post({"run_id": a, "with_runs": ["20000101-000000-000000"]}).status_code == 404
    assert post({"run_id": a, "with_runs": [b], "streams": ["main"]}).status_code == 400
    assert post({"run_id": a, "offsets": {b: 1}}).status_code == 400  # not replayed
    assert post({"run_id": a, "with_runs": [b], "streams": ["x/y/z"]}).status_code == 422
    assert post({"run_id": a, "with_runs": [b], "offsets": {a: 1e12}}).status_code == 422
    assert post({"run_id": a, "with_runs": [b], "follow": True}).status_code == 400
    assert post({"run_id": a, "follow": True, "loop": 2}).status_code == 400  # once
    assert client.get(f"{API}/replays").get_json()["replays"] == []


@pytest.mark.timeout(60)
def test_follow_reaches_the_worker(client, manager, data, ctx):
    """A follow replay of a run no longer recording plays what it holds and ends (the live
    case is tests/replay/test_follow.py)."""
    a, _ = two_runs(data)
    endpoint = free_endpoint()
    r = client.post(f"{API}/replays", json={
        "run_id": a, "follow": True, "endpoints": {"main": endpoint}})  # fmt: skip
    assert r.status_code == 201, r.get_json()
    pull = ctx.socket(zmq.PULL)
    pull.connect(endpoint)
    got = []
    for _ in range(3):
        assert pull.poll(20_000), f"replay stalled after {got}"
        got.append(pull.recv_multipart())
    assert got == [[b"a0"], [b"a1"], [b"a2"]]
    url = f"{API}/replays/{r.get_json()['id']}"
    job = wait_json(client, url, lambda j: j["state"] == "finished")
    assert job["params"]["follow"] is True
    assert any("--follow plays what it holds" in w for w in job["stats"]["warnings"])
