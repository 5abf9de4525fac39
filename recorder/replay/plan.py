"""How to stand in for the original server of each recorded stream.

The recorder was a client; the replayer takes the server's side of every socket pair: a SUB
that connected gets a PUB that binds, a PULL gets a PUSH, a REQ gets a REP, by default on the
port the real server used so clients need no change. The control planes the protocol's
descriptor names come along on data port + 1: those the real server binds next to its bound PUB
(the Open Ephys heartbeat REP, the pyMultiVideo back-channel PULL), and with --controlled the one
a driver binds that the data server connects to (ADZMQ's controlled-driver PUSH).

``--endpoint auto`` binds a free loopback port instead (ZeroMQ picks it when the socket binds):
for clients that cannot reach the original port, or when it is taken. The plan then holds
`AUTO_BIND` until the replayer has bound and knows the port; control planes follow on port + 1.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import zmq

from recorder import protocols
from recorder.endpoints import check_endpoint, parse_tcp, port_plus_one
from recorder.errors import UsageError

if TYPE_CHECKING:
    from recorder.store.reader import StreamReader

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
AUTO = "auto"
"""The endpoint value that asks for a free loopback port."""
AUTO_BIND = "tcp://127.0.0.1:*"
"""Where an auto plan binds; the bound port replaces it once known."""


@dataclass
class StreamPlan:
    stream: str
    protocol: str
    socket_type: str  # PUB, PUSH or REP
    endpoint: str
    bind: bool
    controls: dict[str, str] = field(default_factory=dict)  # control plane -> endpoint
    request: bytes = b"next"  # what a REQ recorder asked with (REP serving)
    auto: bool = False  # bind a free loopback port: endpoint and controls are set when bound

    @property
    def on_request(self) -> bool:
        """REP streams are driven by their clients' requests, not by the run's clock."""
        return self.socket_type == "REP"

    @property
    def zmq_type(self) -> int:
        # XPUB is PUB on the wire; it also reports subscribers and can refuse to drop. ROUTER
        # is REP on the wire to REQ clients, and can leave a request unanswered.
        return {"PUB": zmq.XPUB, "PUSH": zmq.PUSH, "REP": zmq.ROUTER}[self.socket_type]


def serve_endpoint(recorded: str) -> str:
    """Where to bind to stand in for a server the recorder connected to: same port, any host."""
    tcp = parse_tcp(recorded)
    if tcp is None or tcp.port is None:
        return recorded
    return str(tcp._replace(host="*"))


def peer_endpoint(recorded: str) -> str:
    """Where to connect to reach clients that bound where the recorder bound."""
    tcp = parse_tcp(recorded)
    if tcp is None or tcp.port is None or tcp.host not in ("*", "0.0.0.0"):
        return recorded
    return str(tcp._replace(host="127.0.0.1"))


def plan_stream(
    reader: StreamReader,
    *,
    endpoint: str | None = None,
    socket_type: str | None = None,
    controlled: bool = False,
) -> StreamPlan:
    protocol = protocols.lookup(reader.protocol)
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
        if protocol.proxy and socket_type != "REP":
            raise UsageError("a request/reply service can only be replayed as REP")
        served, role = socket_type, "bind"
    bind = role == "bind"
    auto = endpoint == AUTO
    if auto:
        if controlled:
            raise UsageError("--controlled needs a known port for the driver: not --endpoint auto")
        # a stream the replayer connects from has no port to choose: it goes where it went
        endpoint = AUTO_BIND if bind else None
        auto = bind
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
        auto=auto,
    )
    if served == "PUB" and bind and not _event_broadcaster(reader):
        for kind in protocol.replay_controls:
            plan.controls[kind] = AUTO_BIND if auto else port_plus_one(endpoint)
    if controlled:
        if protocol.controlled_by is None:
            raise UsageError(
                f"--controlled is the controlled-driver mode ({_controllable()} streams)"
            )
        plan.controls[protocol.controlled_by] = port_plus_one(peer_endpoint(endpoint))
    return plan


def _event_broadcaster(reader: StreamReader) -> bool:
    """An Open Ephys stream from the Event Broadcaster plugin (its messages have a `format`
    column): the plugin binds no heartbeat REP next to its PUB, so its replay binds none."""
    return reader.protocol == "openephys" and "format" in (reader.attrs.get("columns") or {})


def _controllable() -> str:
    return ", ".join(d.name for d in protocols.descriptors() if d.controlled_by is not None)


def spread_auto(endpoints: dict[str, str], names: list[str]) -> dict[str, str]:
    """A bare ``auto`` (no STREAM=) applies to every stream not given an endpoint of its own."""
    if endpoints.get("") != AUTO:
        return endpoints
    given = {n: e for n, e in endpoints.items() if n}
    return {**{n: AUTO for n in names}, **given}


def check_collisions(plans: Iterable[StreamPlan]) -> None:
    """Refuse, before anything binds, two served sockets that would bind one address (streams
    of several runs served where their servers were, say two cameras both on port 5556): the
    second bind would fail after the first had bound."""
    bound: list[tuple[str, str, str]] = []  # (endpoint, stream, what)
    for plan in plans:
        if not plan.bind:
            continue
        controlled_by = protocols.lookup(plan.protocol).controlled_by
        mine = [(plan.endpoint, "")]
        mine += [(e, f" ({kind})") for kind, e in plan.controls.items() if kind != controlled_by]
        for endpoint, what in mine:
            for other, stream, other_what in bound:
                if _same_address(endpoint, other):
                    raise UsageError(
                        f"streams {stream}{other_what} and {plan.stream}{what} would both bind "
                        f"{endpoint}: serve one elsewhere with --endpoint "
                        f"{plan.stream}=ENDPOINT"
                    )
        bound += [(e, plan.stream, w) for e, w in mine]


def _same_address(a: str, b: str) -> bool:
    """Would binding both fail? A tcp port on one host (or on every interface) clashes; a port
    left to the system (`*`, 0) never does; ipc and inproc names clash when equal."""
    ta, tb = parse_tcp(a), parse_tcp(b)
    if ta is None or tb is None:
        return ta is None and tb is None and "://" in a and a == b
    if not ta.port or ta.port != tb.port:
        return False
    wildcard = ("*", "0.0.0.0", "[::]", "::")
    return ta.host == tb.host or ta.host in wildcard or tb.host in wildcard
