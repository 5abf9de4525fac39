"""What to record: one endpoint, the socket to open, the protocol, and how that protocol's real
clients behave (which socket they use by default, what control sockets they keep alive)."""

from __future__ import annotations

from dataclasses import dataclass, field

from recorder import protocols
from recorder.endpoints import check_endpoint
from recorder.errors import UsageError
from recorder.store import layout

AUTO = "auto"
AUTO_SOCKET = "SUB"
"""Before `--protocol auto` has seen a message it listens like most clients do."""
SOCKET_TYPES = ("SUB", "PULL", "REQ")
RECEIVERS = ("auto", "thread", "process")
"""Where a stream is received: `auto` is a process of its own for the protocols whose streams
are many small messages (`ProtocolDescriptor.receive_apart`), else a thread."""
SILENT_WARNING_S = 5.0  # a source that sent nothing for this long after the start gets a warning


def known_protocols() -> list[str]:
    return [*protocols.names(), AUTO]


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
    protocol: str = protocols.RAW
    stream: str = "main"
    upstream: str | None = None
    heartbeat: bool = True  # keep control planes alive like the system's own clients do
    compression: str | None = None  # layout.COMPRESSIONS; None: none (raw chunks, fastest)
    receiver: str = "auto"  # RECEIVERS

    @property
    def descriptor(self) -> protocols.ProtocolDescriptor | None:
        """What the protocol's clients do; None while `auto` has not decided."""
        return None if self.protocol == AUTO else protocols.get(self.protocol)

    @property
    def proxy(self) -> bool:
        return self.protocol in proxy_protocols()

    def default_socket(self) -> str:
        d = self.descriptor
        return AUTO_SOCKET if d is None else d.default_socket

    def check(self) -> SourceSpec:
        if self.protocol not in known_protocols():
            raise UsageError(
                f"unknown protocol {self.protocol!r} (known: {', '.join(known_protocols())})"
            )
        layout.check_name("stream name", self.stream)
        self.compression = layout.check_compression(self.compression)
        if self.receiver not in RECEIVERS:
            raise UsageError(f"unknown receiver {self.receiver!r} (use {', '.join(RECEIVERS)})")
        if self.proxy:
            return self._check_proxy()
        if self.upstream:
            raise UsageError(f"--upstream is only for --protocol {_proxies()}")
        self.socket_type = (self.socket_type or self.default_socket()).upper()
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
            raise UsageError(
                f"--protocol {self.protocol} needs --upstream (the real service's endpoint)"
            )
        if self.socket_type not in (None, "REP", "ROUTER"):
            raise UsageError(
                f"--protocol {self.protocol} listens like the service: no --socket needed"
            )
        self.socket_type = self.default_socket()  # what clients see, and what replay serves
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


def proxy_protocols() -> list[str]:
    """Protocols recorded through a request/reply proxy (they take --listen and --upstream)."""
    return [d.name for d in protocols.descriptors() if d.proxy]


def _proxies() -> str:
    return " or ".join(proxy_protocols())
