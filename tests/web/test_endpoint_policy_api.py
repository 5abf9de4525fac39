"""The operator's endpoint policy over HTTP: what a request may bind or connect is decided before
any job exists, so a request can no longer delete files through an ipc:// endpoint (libzmq
removes whatever is at the path before binding) or open ports and connections it should not."""

from __future__ import annotations

import pytest

from recorder.endpoint_policy import Allowed, EndpointPolicy
from recorder.web import create_app
from tests.web.webhelp import API, recorded_run

pytestmark = pytest.mark.reliability  # issue 10's reliability suite: pytest -m reliability


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "precious.txt"
    path.write_text("keep me")
    return path


def refused(r, rule: str) -> str:
    assert r.status_code == 403, r.get_json()
    err = r.get_json()["error"]
    assert err["code"] == "endpoint_refused" and err["details"]["rule"] == rule, err
    return err["message"]


def test_an_ipc_endpoint_cannot_delete_a_file_through_a_recording(client, manager, control, victim):
    r = client.post(f"{API}/recordings", json={"sources": [
        {"endpoint": f"ipc://{victim}", "socket_type": "PULL", "bind": True}]})  # fmt: skip
    message = refused(r, "ipc_dir")
    assert "RECORDER_IPC_DIR" in message and "socket folder" in message
    assert control.list_jobs() == []
    assert victim.read_text() == "keep me"


def test_an_ipc_endpoint_cannot_be_saved_as_a_source(client, victim):
    src = {"endpoint": f"ipc://{victim}", "socket_type": "PULL", "bind": True}
    refused(client.post(f"{API}/sources", json={"name": "x", **src}), "ipc_dir")
    refused(client.put(f"{API}/sources/x", json=src), "ipc_dir")
    assert client.get(f"{API}/sources").get_json()["sources"] == []
    assert victim.read_text() == "keep me"


def test_an_ipc_endpoint_cannot_delete_a_file_through_a_replay(client, manager, data, victim):
    run_id = recorded_run(data, "adzmq", 3)
    zarr_json = data / "runs" / run_id / "zarr.json"
    for target in (victim, zarr_json):
        body = {"run_id": run_id, "endpoints": {"main": f"ipc://{target}"}}
        r = client.post(f"{API}/replays", json=body)
        refused(r, "ipc_dir")
    assert victim.read_text() == "keep me" and zarr_json.is_file()


def test_inproc_is_refused_over_http(client):
    r = client.post(f"{API}/recordings", json={"sources": [{"endpoint": "inproc://x"}]})
    refused(r, "transport")


def test_ipc_inside_the_configured_socket_folder_is_allowed(data, tmp_path, token):
    sockets = tmp_path / "sockets"
    sockets.mkdir()
    app = create_app(data, policy=EndpointPolicy(ipc_dir=sockets, data_dir=data))
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    ok = {"endpoint": f"ipc://{sockets}/cam.sock", "socket_type": "PULL", "bind": True}
    assert c.post(f"{API}/recordings", json={"sources": [ok]}).status_code == 201
    out = {"endpoint": f"ipc://{sockets}/../data/runs/x", "socket_type": "PULL", "bind": True}
    refused(c.post(f"{API}/recordings", json={"sources": [out]}), "ipc_dir")


@pytest.mark.parametrize("host", ["*", "0.0.0.0", "[::]", "10.1.2.3"])
def test_binds_off_loopback_are_refused_unless_allowed(client, data, token, host):
    src = {"endpoint": f"tcp://{host}:5999", "socket_type": "PULL", "bind": True}
    message = refused(client.post(f"{API}/recordings", json={"sources": [src]}), "bind")
    assert "RECORDER_ALLOW_BIND" in message
    app = create_app(data, policy=EndpointPolicy(allow_bind=Allowed.parse("*")))
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    assert c.post(f"{API}/recordings", json={"sources": [src]}).status_code == 201


def test_connects_to_networks_not_allowed_are_refused(client, data, token):
    src = {"endpoint": "tcp://8.8.8.8:5555"}
    message = refused(client.post(f"{API}/recordings", json={"sources": [src]}), "connect")
    assert "RECORDER_ALLOW_CONNECT" in message and "8.8.8.8" in message
    refused(client.post(f"{API}/sources", json={"name": "far", **src}), "connect")
    narrow = create_app(data, policy=EndpointPolicy(allow_connect=Allowed.parse("10.0.0.0/8")))
    c = narrow.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    local = {"sources": [{"endpoint": "tcp://127.0.0.1:5555"}]}
    refused(c.post(f"{API}/recordings", json=local), "connect")
    assert c.post(f"{API}/recordings", json={"sources": [{"endpoint": "tcp://10.0.0.1:1"}]}
                  ).status_code == 201  # fmt: skip


def test_a_saved_source_is_checked_again_when_recorded(data, token, client):
    """Saved under a wider policy (or before there was one), refused under today's."""
    wide = create_app(data, policy=EndpointPolicy(allow_connect=Allowed.parse("*")))
    c = wide.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    far = {"name": "far", "endpoint": "tcp://8.8.8.8:5555"}
    assert c.post(f"{API}/sources", json=far).status_code == 201
    refused(client.post(f"{API}/recordings", json={"sources": ["far"]}), "connect")


def test_the_reqrep_proxy_is_not_an_open_relay(client):
    def proxy(listen: str, upstream: str):
        src = {"protocol": "reqrep", "endpoint": listen, "upstream": upstream}
        return client.post(f"{API}/recordings", json={"sources": [src]})

    message = refused(proxy("tcp://127.0.0.1:5998", "tcp://8.8.8.8:80"), "connect")
    assert "upstream" in message
    refused(proxy("tcp://*:5998", "tcp://127.0.0.1:5997"), "bind")
    assert proxy("tcp://127.0.0.1:5998", "tcp://127.0.0.1:5997").status_code == 201


def test_a_replay_follows_the_rules_with_its_derived_endpoints(client, data, control):
    run_id = recorded_run(data, "adzmq", 3)
    # No endpoint given: the recorded port on every interface is refused, so the replay takes
    # the recorded port on loopback and says so in the job.
    r = client.post(f"{API}/replays", json={"run_id": run_id, "paused": True})
    assert r.status_code == 201, r.get_json()
    [(stream, endpoint)] = control.get_job(r.get_json()["id"])["params"]["endpoints"].items()
    assert stream == "main" and endpoint.startswith("tcp://127.0.0.1:")

    def replay(endpoint: str):
        return client.post(
            f"{API}/replays", json={"run_id": run_id, "endpoints": {"main": endpoint}}
        )

    refused(replay("tcp://0.0.0.0:5996"), "bind")
    assert replay("tcp://127.0.0.1:5996").status_code == 201
