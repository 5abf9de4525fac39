"""The one tcp endpoint parser and the one "port + 1"."""

from __future__ import annotations

import pytest

from recorder.endpoints import TcpEndpoint, check_endpoint, parse_tcp, port_plus_one
from recorder.errors import UsageError


@pytest.mark.parametrize(
    "text, host, port",
    [
        ("tcp://127.0.0.1:5556", "127.0.0.1", 5556),
        ("tcp://*:5556", "*", 5556),
        ("tcp://127.0.0.1:*", "127.0.0.1", None),
        ("tcp://[::1]:6000", "[::1]", 6000),
        ("tcp://my-host.example_org:1", "my-host.example_org", 1),
        ("tcp://eth0:9000", "eth0", 9000),
    ],
)
def test_parse_tcp(text, host, port):
    tcp = parse_tcp(text)
    assert tcp == TcpEndpoint(host, port)
    assert str(tcp) == text


@pytest.mark.parametrize(
    "text", ["ipc:///tmp/x", "inproc://a", "tcp://host", "tcp://host:port", "tcp://a b:1", "x"]
)
def test_not_tcp(text):
    assert parse_tcp(text) is None


def test_port_plus_one():
    assert port_plus_one("tcp://127.0.0.1:5556") == "tcp://127.0.0.1:5557"
    assert port_plus_one("tcp://[::1]:6000") == "tcp://[::1]:6001"
    assert port_plus_one("tcp://*:5556") == "tcp://*:5557"
    assert TcpEndpoint("h", 1).next_port() == TcpEndpoint("h", 2)
    for bad in ("tcp://127.0.0.1:*", "tcp://127.0.0.1:65535", "ipc:///tmp/x"):
        with pytest.raises(UsageError, match="no tcp port"):
            port_plus_one(bad)


def test_check_endpoint():
    assert check_endpoint("tcp://127.0.0.1:5556", bind=False) == "tcp://127.0.0.1:5556"
    assert check_endpoint("tcp://*:*", bind=True) == "tcp://*:*"
    assert check_endpoint("ipc:///tmp/x", bind=False) == "ipc:///tmp/x"
    for endpoint, bind, why in [
        ("tcp://127.0.0.1:*", False, "a port number is needed"),
        ("tcp://*:5556", False, "only works with --bind"),
        ("tcp://127.0.0.1:0", True, "port out of range"),
        ("tcp://127.0.0.1:70000", True, "port out of range"),
        ("udp://x:1", True, "unknown endpoint syntax"),
    ]:
        with pytest.raises(UsageError, match=why):
            check_endpoint(endpoint, bind=bind)
