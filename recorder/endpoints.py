"""ZeroMQ endpoint syntax, checked before a socket sees it so users get a clear message."""

from __future__ import annotations

import re

from recorder.errors import UsageError

_TCP = re.compile(r"^tcp://(?P<host>\*|\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-]+):(?P<port>\*|\d{1,5})$")
_OTHER = re.compile(r"^(ipc|inproc)://(?P<path>.+)$")


def check_endpoint(endpoint: str, *, bind: bool) -> str:
    """Return the endpoint if zmq can use it for bind/connect, else raise UsageError."""
    m = _TCP.match(endpoint)
    if m:
        port = m["port"]
        if port == "*":
            if not bind:
                raise UsageError(f"cannot connect to {endpoint!r}: a port number is needed")
        elif not 0 < int(port) < 65536:
            raise UsageError(f"port out of range in endpoint {endpoint!r}")
        if m["host"] == "*" and not bind:
            raise UsageError(f"cannot connect to {endpoint!r}: '*' only works with --bind")
        return endpoint
    if _OTHER.match(endpoint):
        return endpoint
    raise UsageError(
        f"unknown endpoint syntax {endpoint!r}: expected tcp://HOST:PORT, ipc://PATH or inproc://NAME"
    )


def tcp_port(endpoint: str) -> int | None:
    m = _TCP.match(endpoint)
    return int(m["port"]) if m and m["port"] != "*" else None


def with_port(endpoint: str, port: int) -> str:
    """Same host, other port: Open Ephys and ADZMQ put control sockets on port+1."""
    m = _TCP.match(endpoint)
    if not m:
        raise UsageError(f"{endpoint!r} is not a tcp endpoint with a port")
    return f"tcp://{m['host']}:{port}"
