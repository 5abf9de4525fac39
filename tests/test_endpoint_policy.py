"""The endpoint policy's decisions, one rule at a time (no sockets: the policy is pure)."""

from __future__ import annotations

import os

import pytest

from recorder import config
from recorder.endpoint_policy import Allowed, EndpointPolicy, EndpointRefused
from recorder.errors import UsageError

pytestmark = pytest.mark.reliability  # issue 10's reliability suite: pytest -m reliability


def refused(policy: EndpointPolicy, endpoint: str, *, bind: bool) -> str:
    with pytest.raises(EndpointRefused) as info:
        policy.check(endpoint, bind=bind)
    assert info.value.endpoint == endpoint
    return info.value.rule


def test_ipc_only_inside_the_socket_folder(tmp_path):
    sockets, data = tmp_path / "sockets", tmp_path / "data"
    sockets.mkdir()
    data.mkdir()
    (sockets / "link").symlink_to(data)
    policy = EndpointPolicy(ipc_dir=sockets, data_dir=data)
    assert policy.check(f"ipc://{sockets}/a.sock", bind=True)
    assert policy.check(f"ipc://{sockets}/sub/a.sock", bind=False)
    for endpoint in (
        f"ipc://{data}/runs/zarr.json",
        f"ipc://{sockets}/../data/zarr.json",
        f"ipc://{sockets}/link/zarr.json",  # a symlink out of the folder
        f"ipc://{sockets}",
        "ipc://relative.sock",
        "ipc://@abstract",
        "ipc://*",
        "ipc:///etc/passwd",
    ):
        assert refused(policy, endpoint, bind=True) == "ipc_dir", endpoint
    assert refused(EndpointPolicy(), f"ipc://{sockets}/a.sock", bind=True) == "ipc_dir"


def test_the_socket_folder_never_reaches_into_the_data_folder(tmp_path):
    policy = EndpointPolicy(ipc_dir=tmp_path, data_dir=tmp_path / "data")
    assert policy.check(f"ipc://{tmp_path}/a.sock", bind=True)
    assert refused(policy, f"ipc://{tmp_path}/data/runs/x", bind=True) == "ipc_dir"


def test_inproc_and_other_transports_are_refused():
    assert refused(EndpointPolicy(), "inproc://x", bind=True) == "transport"
    with pytest.raises(UsageError):
        EndpointPolicy().check("pgm://eth0;239.1.1.1:5555", bind=False)


@pytest.mark.parametrize(
    "endpoint",
    ["tcp://127.0.0.1:5555", "tcp://127.1.2.3:*", "tcp://[::1]:5555", "tcp://localhost:5555",
     "tcp://lo:5555"],
)  # fmt: skip
def test_binds_on_loopback_are_allowed(endpoint):
    assert EndpointPolicy().check(endpoint, bind=True) == endpoint


@pytest.mark.parametrize(
    "endpoint",
    ["tcp://*:5555", "tcp://0.0.0.0:5555", "tcp://[::]:5555", "tcp://10.1.2.3:5555",
     "tcp://eth0:5555", "tcp://[::ffff:10.0.0.1]:5555"],
)  # fmt: skip
def test_other_binds_need_the_operator(endpoint):
    assert refused(EndpointPolicy(), endpoint, bind=True) == "bind"
    assert EndpointPolicy(allow_bind=Allowed.parse("*")).check(endpoint, bind=True)


def test_allowed_bind_networks_and_interfaces():
    policy = EndpointPolicy(allow_bind=Allowed.parse("10.0.0.0/8, eth0"))
    assert policy.check("tcp://10.1.2.3:5555", bind=True)
    assert policy.check("tcp://ETH0:5555", bind=True)
    assert refused(policy, "tcp://192.168.1.1:5555", bind=True) == "bind"
    assert refused(policy, "tcp://*:5555", bind=True) == "bind"  # '*' is not a network


def test_connects_by_default_go_to_loopback_and_private_networks():
    policy = EndpointPolicy(resolve=lambda host: [])
    for endpoint in ("tcp://127.0.0.1:1", "tcp://10.2.3.4:1", "tcp://192.168.0.9:1",
                     "tcp://172.20.0.1:1", "tcp://[::1]:1", "tcp://[fd00::1]:1"):  # fmt: skip
        assert policy.check(endpoint, bind=False) == endpoint
    for endpoint in ("tcp://8.8.8.8:53", "tcp://169.254.169.254:80", "tcp://[2001:db8::1]:1",
                     "tcp://172.32.0.1:1"):  # fmt: skip
        assert refused(policy, endpoint, bind=False) == "connect"


def test_a_host_name_is_resolved_and_every_address_checked():
    table = {"daq": ["10.0.0.5"], "both": ["10.0.0.5", "93.184.216.34"], "gone": []}
    policy = EndpointPolicy(resolve=lambda host: table[host])
    assert policy.check("tcp://daq:5555", bind=False)
    with pytest.raises(EndpointRefused, match=r"93\.184\.216\.34 is not in the allowed"):
        policy.check("tcp://both:5555", bind=False)
    with pytest.raises(EndpointRefused, match="does not resolve"):
        policy.check("tcp://gone:5555", bind=False)


def test_connect_allow_list_by_name_network_or_everything():
    by_name = EndpointPolicy(allow_connect=Allowed.parse("daq.lab"), resolve=lambda h: [])
    assert by_name.check("tcp://daq.lab:5555", bind=False)
    assert refused(by_name, "tcp://127.0.0.1:5555", bind=False) == "connect"
    anything = EndpointPolicy(allow_connect=Allowed.parse("*"))
    assert anything.check("tcp://8.8.8.8:53", bind=False)


def test_allow_lists_refuse_what_is_not_a_network_or_name():
    with pytest.raises(UsageError, match="not a network"):
        Allowed.parse("10.0.0.0/8, evil/../x")


def test_settings_come_from_options_else_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(config.IPC_DIR_ENV, str(tmp_path))
    monkeypatch.setenv(config.ALLOW_BIND_ENV, "*")
    monkeypatch.setenv(config.ALLOW_CONNECT_ENV, "10.0.0.0/8")
    policy = config.endpoint_policy(tmp_path / "data")
    assert policy.ipc_dir == tmp_path and policy.allow_bind.everything
    assert str(policy.allow_connect) == "10.0.0.0/8"
    policy = config.endpoint_policy(tmp_path, ipc_dir=os.devnull, allow_bind="", allow_connect="")
    assert policy.ipc_dir is not None and not policy.allow_bind.everything
    assert refused(policy, "tcp://127.0.0.1:1", bind=False) == "connect"
    for name in (config.IPC_DIR_ENV, config.ALLOW_BIND_ENV, config.ALLOW_CONNECT_ENV):
        monkeypatch.delenv(name)
    policy = config.endpoint_policy(tmp_path)
    assert policy.ipc_dir is None and policy.check("tcp://10.0.0.1:1", bind=False)
