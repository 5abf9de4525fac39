"""ZeroMQ endpoint syntax, checked before a socket sees it so users get a clear message.

This is the one parser of ``tcp://HOST:PORT`` in the code base, and `port_plus_one` the one place
that knows where a control socket sits next to a data socket (Open Ephys heartbeats, the
pyMultiVideo back-channel, ADZMQ's controlled driver all use data port + 1).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from recorder.errors import UsageError

_TCP = re.compile(r"^tcp://(?P<host>\*|\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-]+):(?P<port>\*|\d{1,5})$")
_OTHER = re.compile(r"^(ipc|inproc)://(?P<path>.+)$")
_MAX_PORT = 65535


class TcpEndpoint(NamedTuple):
    """A parsed ``tcp://HOST:PORT``; `str()` gives the endpoint back."""

    host: str
    """As written: a name, an IPv4 address, a bracketed IPv6 address or ``*`` (bind: all)."""
    port: int | None
    """None for ``*``: bind any free port."""

    def __str__(self) -> str:
        return f"tcp://{self.host}:{'*' if self.port is None else self.port}"

    def next_port(self) -> TcpEndpoint:
        """Same host, port + 1: where the real servers keep their control sockets."""
        if self.port is None or not 0 < self.port < _MAX_PORT:
            raise UsageError(f"{self} has no tcp port to put a control socket next to")
        return TcpEndpoint(self.host, self.port + 1)


def parse_tcp(endpoint: str) -> TcpEndpoint | None:
    """The host and port of a ``tcp://`` endpoint, None for anything else."""
    m = _TCP.match(endpoint)
    if not m:
        return None
    return TcpEndpoint(m["host"], None if m["port"] == "*" else int(m["port"]))


def port_plus_one(endpoint: str) -> str:
    """The control socket's endpoint next to data `endpoint` (UsageError if it has no port)."""
    tcp = parse_tcp(endpoint)
    if tcp is None:
        raise UsageError(f"{endpoint!r} has no tcp port to put a control socket next to")
    return str(tcp.next_port())


def check_endpoint(endpoint: str, *, bind: bool) -> str:
    """Return the endpoint if zmq can use it for bind/connect, else raise UsageError."""
    tcp = parse_tcp(endpoint)
    if tcp is not None:
        if tcp.port is None:
            if not bind:
                raise UsageError(f"cannot connect to {endpoint!r}: a port number is needed")
        elif not 0 < tcp.port <= _MAX_PORT:
            raise UsageError(f"port out of range in endpoint {endpoint!r}")
        if tcp.host == "*" and not bind:
            raise UsageError(f"cannot connect to {endpoint!r}: '*' only works with --bind")
        return endpoint
    if _OTHER.match(endpoint):
        return endpoint
    raise UsageError(
        f"unknown endpoint syntax {endpoint!r}: expected tcp://HOST:PORT, ipc://PATH or inproc://NAME"
    )
