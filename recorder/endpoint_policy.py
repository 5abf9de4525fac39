"""What endpoints a request made over HTTP may bind or connect: the operator's rules, decided
before any socket or file is touched.

libzmq removes whatever exists at an ``ipc://`` path before it binds there, a bind on all
interfaces opens a port to the whole network, and a connect goes wherever it is told; a user of
the CLI may do all of that (it runs as them), a web request must not. So planning a job from
HTTP checks every endpoint it will use against an `EndpointPolicy`:

- ``ipc://`` only inside the configured socket folder (symlinks and ``..`` resolved; never inside
  the data folder; refused when no folder is configured), ``inproc://`` never (it only works
  inside one process anyway), any other transport never;
- binds only on loopback (127.0.0.0/8, ::1, ``localhost``) unless the operator allows more
  (networks, addresses, interface names, or ``*`` for every interface);
- connects only to the networks and hosts the operator allows; a host name is resolved and every
  address it has must be allowed.

Pure: parsing and deciding, no sockets. The settings come from recorder/config.py.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from recorder.endpoints import check_endpoint, parse_tcp
from recorder.errors import UsageError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
ALL_INTERFACES = "*"
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
PRIVATE = (
    ipaddress.ip_network("10.0.0.0/8"),
    ipaddress.ip_network("172.16.0.0/12"),
    ipaddress.ip_network("192.168.0.0/16"),
    ipaddress.ip_network("fc00::/7"),
)
#: The server's default for connects: this host and the private networks instruments sit on.
#: Not link-local (169.254.0.0/16 holds cloud metadata services) and not the internet.
DEFAULT_CONNECT = ",".join(str(n) for n in LOOPBACK + PRIVATE)
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "lo"})
_ANY_ADDRESSES = frozenset({"*", "0.0.0.0", "::", "[::]"})

# Names of the settings, for messages that tell the operator what to change.
IPC_DIR_SETTING = "RECORDER_IPC_DIR"
ALLOW_BIND_SETTING = "RECORDER_ALLOW_BIND"
ALLOW_CONNECT_SETTING = "RECORDER_ALLOW_CONNECT"


class EndpointRefused(UsageError):
    """An endpoint the operator's policy does not allow (HTTP 403 ``endpoint_refused``)."""

    def __init__(self, message: str, *, endpoint: str, rule: str):
        super().__init__(message)
        self.endpoint, self.rule = endpoint, rule


@dataclass(frozen=True)
class Allowed:
    """A parsed allow list: networks, names (hosts or interfaces), and whether ``*`` is in it."""

    networks: tuple[Network, ...] = ()
    names: frozenset[str] = frozenset()
    everything: bool = False

    @classmethod
    def parse(cls, text: str | Iterable[str] | None) -> Allowed:
        """Comma-separated (or a list of) CIDRs, addresses, host or interface names, ``*``."""
        items = text.split(",") if isinstance(text, str) else list(text or ())
        networks, names, everything = [], set(), False
        for raw in items:
            item = raw.strip()
            if not item:
                continue
            if item == ALL_INTERFACES:
                everything = True
                continue
            try:
                networks.append(ipaddress.ip_network(item.strip("[]"), strict=False))
            except ValueError:
                if not all(c.isalnum() or c in "-._" for c in item):
                    raise UsageError(f"not a network, address or host name: {item!r}") from None
                names.add(item.lower())
        return cls(tuple(networks), frozenset(names), everything)

    def __str__(self) -> str:
        parts = ["*"] if self.everything else []
        return ",".join([*parts, *map(str, self.networks), *sorted(self.names)])

    def has_address(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        if self.everything:
            return True
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return any(address in n for n in self.networks)


def resolve_host(host: str) -> list[str]:
    """Every address a host name has (what a connect may reach); [] if it does not resolve."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    return sorted({str(info[4][0]).split("%")[0] for info in infos})


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


@dataclass(frozen=True)
class EndpointPolicy:
    ipc_dir: Path | None = None
    """The only folder ``ipc://`` endpoints may be in; None: no ``ipc://`` at all."""
    data_dir: Path | None = None
    """Never an ``ipc://`` endpoint in here (runs would be replaced by sockets)."""
    allow_bind: Allowed = field(default_factory=Allowed)
    """Besides loopback."""
    allow_connect: Allowed = field(default_factory=lambda: Allowed.parse(DEFAULT_CONNECT))
    resolve: Callable[[str], list[str]] = resolve_host

    def check(self, endpoint: str, *, bind: bool, what: str = "endpoint") -> str:
        """The endpoint if the policy allows it, else EndpointRefused naming the rule."""
        check_endpoint(endpoint, bind=bind)
        if endpoint.startswith("ipc://"):
            return self._check_ipc(endpoint, what)
        tcp = parse_tcp(endpoint)
        if tcp is None:
            raise EndpointRefused(
                f"{what} {endpoint}: only tcp:// and ipc:// endpoints may be used over HTTP",
                endpoint=endpoint, rule="transport",
            )  # fmt: skip
        if bind:
            return self._check_bind(endpoint, tcp.host, what)
        return self._check_connect(endpoint, tcp.host, what)

    def pinned(self, endpoint: str, *, what: str = "endpoint") -> str:
        """A connect endpoint checked and made numeric: a host name is resolved once, every
        address checked, and ``tcp://ADDRESS:PORT`` returned, so the connect goes to an address
        the check saw. libzmq resolves a name again when it connects, and a name whose address
        changes in between (DNS rebinding) would take it past the networks allowed. A name the
        operator allows by name, ``*``, numeric and non-tcp endpoints come back as they are."""
        tcp = parse_tcp(endpoint)
        allowed = self.allow_connect
        if (
            tcp is None
            or _address(tcp.host) is not None
            or allowed.everything
            or tcp.host.lower() in allowed.names
        ):
            return self.check(endpoint, bind=False, what=what)
        addresses = self.resolve(tcp.host)
        once = replace(self, resolve=lambda _host: addresses)
        once.check(endpoint, bind=False, what=what)  # [] is refused: the name does not resolve
        # zmq sockets speak IPv4 only unless told otherwise: prefer an IPv4 address
        first = sorted(addresses, key=lambda a: ":" in a)[0]
        return str(tcp._replace(host=f"[{first}]" if ":" in first else first))

    def _check_ipc(self, endpoint: str, what: str) -> str:
        if self.ipc_dir is None:
            raise EndpointRefused(
                f"{what} {endpoint}: ipc:// endpoints are refused because no socket folder is "
                f"configured ({IPC_DIR_SETTING})",
                endpoint=endpoint, rule="ipc_dir",
            )  # fmt: skip
        folder = Path(os.path.realpath(self.ipc_dir))
        raw = endpoint[len("ipc://") :]
        path = Path(os.path.realpath(raw)) if raw.startswith("/") else None
        if path is None or path == folder or not _inside(path, folder):
            raise EndpointRefused(
                f"{what} {endpoint}: ipc:// endpoints must be inside the socket folder {folder} "
                f"({IPC_DIR_SETTING})",
                endpoint=endpoint, rule="ipc_dir",
            )  # fmt: skip
        if self.data_dir is not None and _inside(path, Path(os.path.realpath(self.data_dir))):
            raise EndpointRefused(
                f"{what} {endpoint}: ipc:// endpoints must not be inside the data folder",
                endpoint=endpoint, rule="ipc_dir",
            )  # fmt: skip
        return endpoint

    def _check_bind(self, endpoint: str, host: str, what: str) -> str:
        name = host.lower()
        if self.allow_bind.everything:
            return endpoint
        if name in _ANY_ADDRESSES:
            refused = "binding on all interfaces is not allowed"
        else:
            address = _address(host)
            if address is not None:
                if any(address in n for n in LOOPBACK) or self.allow_bind.has_address(address):
                    return endpoint
            elif name in _LOOPBACK_NAMES or name in self.allow_bind.names:
                return endpoint  # libzmq binds to interface names and addresses, never DNS
            refused = "binds are allowed on loopback only"
        raise EndpointRefused(
            f"{what} {endpoint}: {refused} (the operator allows more with {ALLOW_BIND_SETTING}, "
            f"now {str(self.allow_bind) or 'empty'})",
            endpoint=endpoint, rule="bind",
        )  # fmt: skip

    def _check_connect(self, endpoint: str, host: str, what: str) -> str:
        allowed = self.allow_connect
        if allowed.everything or host.lower() in allowed.names:
            return endpoint
        address = _address(host)
        addresses = [host.strip("[]")] if address is not None else self.resolve(host)
        if not addresses:
            reason = f"host {host!r} does not resolve"
        else:
            refused = [a for a in addresses if not allowed.has_address(ipaddress.ip_address(a))]
            if not refused:
                return endpoint
            reason = f"{', '.join(refused)} is not in the allowed networks"
        raise EndpointRefused(
            f"{what} {endpoint}: connects go only to the networks and hosts the operator allows "
            f"({ALLOW_CONNECT_SETTING}: {allowed or 'nothing'}); {reason}",
            endpoint=endpoint, rule="connect",
        )  # fmt: skip
