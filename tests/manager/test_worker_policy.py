"""The worker checks a job's endpoints again against the policy where it runs: the web app may
be on another host, with other settings, and a host name checked there may resolve elsewhere by
the time the worker connects (DNS rebinding). Real web app, real manager, real workers."""

from __future__ import annotations

import pytest

from recorder import config
from recorder.db.jobs import DESIRED_STOPPED, FAILED, KIND_RECORD, RUNNING
from recorder.endpoint_policy import Allowed, EndpointPolicy, EndpointRefused
from recorder.simulators import make_simulator
from recorder.web import create_app
from tests.helpers import running_manager, wait_for
from tests.recordhelp import running
from tests.web.webhelp import API, recorded_run

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "precious.txt"
    path.write_text("keep me")
    return path


def _client(data, policy: EndpointPolicy):
    """The web app with its own (here: permissive) policy."""
    app = create_app(data, policy=policy)
    secret, _ = app.extensions["recorder"].control.create_token("tests")
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    return c, app.extensions["recorder"].control


@pytest.fixture
def strict_manager(data, monkeypatch):
    """A real manager whose environment has the default policy: no ipc://, binds on loopback,
    connects to loopback and private networks (its workers inherit the environment)."""
    for name in ("RECORDER_IPC_DIR", "RECORDER_ALLOW_BIND", "RECORDER_ALLOW_CONNECT"):
        monkeypatch.delenv(name, raising=False)
    with running_manager(data) as m:
        yield m


def _ended(control, job_id: str) -> dict:
    return wait_for(
        lambda: (j := control.get_job(job_id))["state"] in ("failed", "finished", "stopped") and j,
        30,
        "the job to end",
    )


def test_a_recording_the_web_app_allowed_is_refused_where_it_runs(
    data, tmp_path, victim, strict_manager
):
    c, control = _client(data, EndpointPolicy(ipc_dir=tmp_path, data_dir=data))
    src = {"endpoint": f"ipc://{victim}", "socket_type": "PULL", "bind": True}
    r = c.post(f"{API}/recordings", json={"sources": [src]})
    assert r.status_code == 201, r.get_json()
    job = _ended(control, r.get_json()["id"])
    assert job["state"] == FAILED
    assert "rule ipc_dir" in job["error"] and "RECORDER_IPC_DIR" in job["error"], job["error"]
    assert victim.read_text() == "keep me"
    assert not (config.runs_dir(data) / job["run_id"]).exists()  # nothing was opened


def test_a_replay_the_web_app_allowed_is_refused_where_it_runs(
    data, tmp_path, victim, strict_manager
):
    run_id = recorded_run(data, "adzmq", 3)
    c, control = _client(data, EndpointPolicy(ipc_dir=tmp_path, data_dir=data))
    r = c.post(f"{API}/replays", json={"run_id": run_id, "endpoints": {"main": f"ipc://{victim}"}})
    assert r.status_code == 409, r.get_json()  # answered once the worker refused it
    job = _ended(control, r.get_json()["error"]["details"]["id"])
    assert job["state"] == FAILED and "rule ipc_dir" in job["error"], job["error"]
    assert victim.read_text() == "keep me"


def test_a_connect_the_worker_does_not_allow_is_refused(data, strict_manager):
    c, control = _client(data, EndpointPolicy(allow_connect=Allowed.parse("*")))
    r = c.post(f"{API}/recordings", json={"sources": [{"endpoint": "tcp://169.254.169.254:80"}]})
    assert r.status_code == 201, r.get_json()
    job = _ended(control, r.get_json()["id"])
    assert job["state"] == FAILED and "rule connect" in job["error"], job["error"]
    assert "RECORDER_ALLOW_CONNECT" in job["error"]


def test_a_host_name_is_connected_at_the_address_that_was_checked(data, strict_manager):
    sim = make_simulator("adzmq", "tcp://127.0.0.1:* PUB", rate=200)
    endpoint = sim.bind()
    port = endpoint.rsplit(":", 1)[1]
    c, control = _client(data, EndpointPolicy())
    with running(sim):
        src = {"endpoint": f"tcp://localhost:{port}", "protocol": "adzmq"}
        r = c.post(f"{API}/recordings", json={"sources": [src], "count": 5})
        assert r.status_code == 201, r.get_json()
        job = _ended(control, r.get_json()["id"])
    assert job["state"] == "finished", job["error"]
    assert job["stats"]["streams"][0]["endpoint"] == f"tcp://127.0.0.1:{port}"


def test_a_job_without_the_mark_runs_as_before(data, tmp_path, strict_manager):
    """Planned without a policy: the worker does not check it (ipc:// is refused by its
    environment, and the job runs all the same)."""
    _, control = _client(data, EndpointPolicy())
    src = {"endpoint": f"ipc://{tmp_path}/cam.sock", "socket_type": "PULL", "bind": True}
    params = {"sources": [{**src, "stream": "main"}], "name": "", "tags": [],
              "duration_s": None, "count": None, "flush_interval_s": 1.0}  # fmt: skip
    job = control.create_job(KIND_RECORD, params, run_id=None)
    wait_for(lambda: control.get_job(job["id"])["state"] == RUNNING, 30, "the job to run")
    control.set_desired(job["id"], DESIRED_STOPPED)
    assert _ended(control, job["id"])["state"] == "stopped"


def test_pinned_resolves_once_and_checks_every_address():
    answers = iter([["10.9.8.7"], ["169.254.169.254"]])  # a rebinding name: a new answer each time
    policy = EndpointPolicy(
        allow_connect=Allowed.parse("10.0.0.0/8"), resolve=lambda h: next(answers)
    )
    assert policy.pinned("tcp://cam.example:5000") == "tcp://10.9.8.7:5000"
    with pytest.raises(EndpointRefused) as refused:
        policy.pinned("tcp://cam.example:5000")
    assert refused.value.rule == "connect"
    mixed = EndpointPolicy(resolve=lambda h: ["8.8.8.8", "127.0.0.1"])
    with pytest.raises(EndpointRefused, match=r"8\.8\.8\.8"):
        mixed.pinned("tcp://cam.example:5000")
    both = EndpointPolicy(resolve=lambda h: ["::1", "127.0.0.1"])
    assert both.pinned("tcp://localhost:5000") == "tcp://127.0.0.1:5000"  # zmq speaks IPv4
    six = EndpointPolicy(resolve=lambda h: ["::1"])
    assert six.pinned("tcp://localhost:5000") == "tcp://[::1]:5000"
    named = EndpointPolicy(allow_connect=Allowed.parse("cam.example"), resolve=lambda h: [])
    assert named.pinned("tcp://cam.example:5000") == "tcp://cam.example:5000"
    with pytest.raises(EndpointRefused, match="does not resolve"):
        EndpointPolicy(resolve=lambda h: []).pinned("tcp://nowhere.example:5000")


@pytest.mark.timeout(180)
def test_serve_gives_its_policy_options_to_the_workers_too(tmp_path, monkeypatch):
    """`recorder serve --ipc-dir DIR` without RECORDER_IPC_DIR in the environment: the job the
    web app allowed is allowed where it runs as well."""
    import json
    import urllib.request
    from urllib.parse import urlsplit

    from tests.clihelp import serve_demo

    monkeypatch.delenv("RECORDER_IPC_DIR", raising=False)
    sockets = tmp_path / "sockets"
    sockets.mkdir()
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with serve_demo(tmp_path, extra=("--ipc-dir", str(sockets))) as (link, _proc):
        parts = urlsplit(link)
        base, token = f"http://{parts.netloc}/api/v1", parts.fragment.removeprefix("token=")

        def call(path: str, body=None) -> dict:
            data = None if body is None else json.dumps(body).encode()
            req = urllib.request.Request(base + path, data=data, method="POST" if data else "GET")
            req.add_header("Authorization", f"Bearer {token}")
            req.add_header("Content-Type", "application/json")
            with direct.open(req, timeout=20) as resp:
                return json.loads(resp.read())

        src = {"endpoint": f"ipc://{sockets}/cam.sock", "socket_type": "PULL", "bind": True}
        job = call("/recordings", {"sources": [src]})
        state = wait_for(
            lambda: (
                (s := call(f"/recordings/{job['id']}")["state"]) not in ("pending", "starting")
                and s
            ),
            60,
            "the recording to start",
        )
        assert state == "running", call(f"/recordings/{job['id']}")
        call(f"/recordings/{job['id']}/stop", {})
