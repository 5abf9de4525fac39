"""Faithful stand-ins for the live sources, for tests, benchmarks and `recorder serve --demo`."""

from __future__ import annotations

from recorder.errors import UsageError
from recorder.simulators.adzmq import AdzmqSimulator
from recorder.simulators.karabo import KaraboSimulator
from recorder.simulators.openephys import OpenEphysSimulator
from recorder.simulators.pymultivideo import PyMultiVideoSimulator
from recorder.simulators.reqrep import ReqRepServer

SIMULATORS = {
    "openephys": OpenEphysSimulator,
    "adzmq": AdzmqSimulator,
    "pymultivideo": PyMultiVideoSimulator,
    "karabo": KaraboSimulator,
    "reqrep": ReqRepServer,
}


def make_simulator(protocol: str, endpoint: str | None = None, **options):
    """A simulator of `protocol`; unknown options are a UsageError, not a TypeError."""
    try:
        cls = SIMULATORS[protocol]
    except KeyError:
        raise UsageError(
            f"no simulator for {protocol!r} (have: {', '.join(sorted(SIMULATORS))})"
        ) from None
    if endpoint is not None:
        options["endpoint"] = endpoint
    try:
        return cls(**options)
    except TypeError as exc:
        raise UsageError(f"bad option for the {protocol} simulator: {exc}") from None
