"""What to record: one endpoint, the socket to open, the protocol, and how that protocol's real
clients behave (which socket they use by default, what control sockets they keep alive)."""

from __future__ import annotations

from dataclasses import dataclass, field

from recorder.endpoints import check_endpoint
from recorder.errors import UsageError
from recorder.protocols import protocol_names
from recorder.store import layout

AUTO = "auto"
SOCKET_TYPES = ("SUB", "PULL", "REQ")

#: The socket a real client of each system opens when the user does not say.
DEFAULT_SOCKET = {
    "raw": "SUB",
    AUTO: "SUB",
    "openephys": "SUB",  # the GUI binds PUB (data) and REP (heartbeat) on port + 1
    "adzmq": "SUB",  # NDPluginZMQ binds PUB for `tcp://*:port`
    "pymultivideo": "SUB",
    "karabo": "REQ",  # the bridge server binds REP by default and answers `next`
}


def known_protocols() -> list[str]:
    return [*protocol_names(), AUTO]


@dataclass
class SourceSpec:
    """One endpoint to record, as the user described it.

    For `reqrep` the recorder is a transparent proxy: clients connect to `endpoint` (bound), and
    every request goes on to `upstream`, the real service.
    """

    endpoint: str
    socket_type: str | None = None
    bind: bool = False
    subscribe: list[bytes] = field(default_factory=list)
    request: bytes = b"next"
    protocol: str = "raw"
    stream: str = "main"
    upstream: str | None = None
    heartbeat: bool = True  # openephys: keep the GUI's heartbeat like its own clients do

    @property
    def proxy(self) -> bool:
        return self.protocol == "reqrep"

    def check(self) -> SourceSpec:
        if self.protocol not in known_protocols():
            raise UsageError(
                f"unknown protocol {self.protocol!r} (known: {', '.join(known_protocols())})"
            )
        layout.check_name("stream name", self.stream)
        if self.proxy:
            return self._check_proxy()
        if self.upstream:
            raise UsageError("--upstream is only for --protocol reqrep")
        self.socket_type = (self.socket_type or DEFAULT_SOCKET[self.protocol]).upper()
        if self.socket_type not in SOCKET_TYPES:
            raise UsageError(
                f"unknown socket type {self.socket_type!r} (use {', '.join(SOCKET_TYPES)})"
            )
        if self.bind and self.socket_type == "REQ":
            raise UsageError("a REQ recorder connects to the server; --bind is for SUB and PULL")
        if self.subscribe and self.socket_type != "SUB":
            raise UsageError("--subscribe only applies to SUB sockets")
        check_endpoint(self.endpoint, bind=self.bind)
        return self

    def _check_proxy(self) -> SourceSpec:
        if not self.upstream:
            raise UsageError("--protocol reqrep needs --upstream (the real service's endpoint)")
        if self.socket_type not in (None, "REP", "ROUTER"):
            raise UsageError("--protocol reqrep listens like the service: no --socket needed")
        self.socket_type = "REP"  # what clients see, and what replay serves
        self.bind = True
        check_endpoint(self.endpoint, bind=True)
        check_endpoint(self.upstream, bind=False)
        return self

    @property
    def role(self) -> str:
        return "bind" if self.bind else "connect"

    def options(self) -> dict:
        """Socket options as stored in the stream's attributes."""
        out: dict = {"subscribe": [p.decode("latin-1") for p in self.subscribe]}
        if self.socket_type == "REQ":
            out["request"] = self.request.decode("latin-1")
        if self.upstream:
            out["upstream"] = self.upstream
        return out
