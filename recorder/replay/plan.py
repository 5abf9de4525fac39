"""How to stand in for the original server of each recorded stream.

The recorder was a client; the replayer takes the server's side of every socket pair: a SUB
that connected gets a PUB that binds, a PULL gets a PUSH, a REQ gets a REP, by default on the
port the real server used so clients need no change. Protocol control planes come along:
the Open Ephys heartbeat REP on port + 1, the pyMultiVideo back-channel PULL on port + 1, the
ADZMQ controlled-driver PUSH that the data server PULL-connects to on port + 1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import zmq

from recorder.endpoints import check_endpoint
from recorder.errors import UsageError
from recorder.store.reader import StreamReader

_TCP = re.compile(r"^tcp://(?P<host>[^:]+|\[[^\]]+\]):(?P<port>\d+)$")

#: recorded (socket type, role) -> (served zmq type name, served role)
_COUNTERPART = {
    ("SUB", "connect"): ("PUB", "bind"),
    ("SUB", "bind"): ("PUB", "connect"),
    ("PULL", "connect"): ("PUSH", "bind"),
    ("PULL", "bind"): ("PUSH", "connect"),
    ("REQ", "connect"): ("REP", "bind"),
    ("REP", "bind"): ("REP", "bind"),  # reqrep proxy: clients connected to the recorder
}
SERVED_TYPES = ("PUB", "PUSH", "REP")


@dataclass
class StreamPlan:
    stream: str
    protocol: str
    socket_type: str  # PUB, PUSH or REP
    endpoint: str
    bind: bool
    controls: dict[str, str] = field(default_factory=dict)  # control plane -> endpoint
    request: bytes = b"next"  # what a REQ recorder asked with (REP serving)

    @property
    def on_request(self) -> bool:
        """REP streams are driven by their clients' requests, not by the run's clock."""
        return self.socket_type == "REP"

    @property
    def zmq_type(self) -> int:
        # XPUB is PUB on the wire; it also reports subscribers and can refuse to drop.
        return {"PUB": zmq.XPUB, "PUSH": zmq.PUSH, "REP": zmq.REP}[self.socket_type]


def serve_endpoint(recorded: str) -> str:
    """Where to bind to stand in for a server the recorder connected to: same port, any host."""
    m = _TCP.match(recorded)
    return f"tcp://*:{m['port']}" if m else recorded


def peer_endpoint(recorded: str) -> str:
    """Where to connect to reach clients that bound where the recorder bound."""
    m = _TCP.match(recorded)
    if m and m["host"] in ("*", "0.0.0.0"):
        return f"tcp://127.0.0.1:{m['port']}"
    return recorded


def port_plus_one(endpoint: str, *, host: str | None = None) -> str:
    m = _TCP.match(endpoint)
    if not m:
        raise UsageError(f"{endpoint!r} has no tcp port to put the control socket next to")
    return f"tcp://{host or m['host']}:{int(m['port']) + 1}"


def plan_stream(
    reader: StreamReader,
    *,
    endpoint: str | None = None,
    socket_type: str | None = None,
    controlled: bool = False,
) -> StreamPlan:
    recorded = (reader.socket_type, reader.role)
    if recorded not in _COUNTERPART:
        raise UsageError(
            f"stream {reader.name}: cannot serve a recorded {recorded[0]}/{recorded[1]}"
        )
    served, role = _COUNTERPART[recorded]
    if socket_type:
        socket_type = socket_type.upper()
        if socket_type not in SERVED_TYPES:
            raise UsageError(f"--socket takes {', '.join(SERVED_TYPES)}, not {socket_type!r}")
        if reader.protocol == "reqrep" and socket_type != "REP":
            raise UsageError("a request/reply service can only be replayed as REP")
        served, role = socket_type, "bind"
    bind = role == "bind"
    if endpoint is None:
        endpoint = serve_endpoint(reader.endpoint) if bind else peer_endpoint(reader.endpoint)
    check_endpoint(endpoint, bind=bind)
    plan = StreamPlan(
        stream=reader.name,
        protocol=reader.protocol,
        socket_type=served,
        endpoint=endpoint,
        bind=bind,
        request=(reader.attrs.get("options") or {}).get("request", "next").encode("latin-1"),
    )
    if reader.protocol == "openephys" and served == "PUB" and bind:
        plan.controls["heartbeat"] = port_plus_one(endpoint)
    if reader.protocol == "pymultivideo" and served == "PUB" and bind:
        plan.controls["backchannel"] = port_plus_one(endpoint)
    if controlled:
        if reader.protocol != "adzmq":
            raise UsageError("--controlled is the ADZMQ controlled-driver mode (adzmq streams)")
        plan.controls["adzmq-control"] = port_plus_one(peer_endpoint(endpoint))
    return plan
