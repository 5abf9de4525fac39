"""Faithful stand-ins for the live sources, for tests, benchmarks and `recorder serve --demo`.

Which simulator serves a protocol is the protocol descriptor's to say (`recorder.protocols`).
"""

from __future__ import annotations

from recorder import protocols
from recorder.errors import UsageError
from recorder.simulators.adzmq import AdzmqSimulator
from recorder.simulators.base import Simulator
from recorder.simulators.karabo import KaraboSimulator
from recorder.simulators.openephys import OpenEphysSimulator
from recorder.simulators.pymultivideo import PyMultiVideoSimulator
from recorder.simulators.raw import RawSimulator
from recorder.simulators.reqrep import ReqRepServer

__all__ = [
    "AdzmqSimulator",
    "KaraboSimulator",
    "OpenEphysSimulator",
    "PyMultiVideoSimulator",
    "RawSimulator",
    "ReqRepServer",
    "Simulator",
    "make_simulator",
    "simulator_names",
]


def simulator_names() -> list[str]:
    return sorted(d.name for d in protocols.descriptors() if d.simulator is not None)


def make_simulator(protocol: str, endpoint: str | None = None, /, **options) -> Simulator:
    """A simulator of `protocol`; unknown options are a UsageError, not a TypeError.

    Positional-only, so options may have the same names (the Karabo simulator's `protocol`)."""
    cls = protocols.get(protocol).simulator_class() if protocol in protocols.names() else None
    if cls is None:
        raise UsageError(f"no simulator for {protocol!r} (have: {', '.join(simulator_names())})")
    if endpoint is not None:
        options["endpoint"] = endpoint
    try:
        return cls(**options)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"bad option for the {protocol} simulator: {exc}") from None
