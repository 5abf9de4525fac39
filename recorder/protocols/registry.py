"""The protocols the recorder speaks: one descriptor each, in the order the demo serves them.

A new protocol is one module ending in a `ProtocolDescriptor` plus one line here.
"""

from __future__ import annotations

from recorder.errors import UsageError
from recorder.protocols import adzmq, karabo, openephys, pymultivideo, raw, reqrep
from recorder.protocols.base import Codec
from recorder.protocols.descriptor import ProtocolDescriptor

_REGISTERED: tuple[ProtocolDescriptor, ...] = (
    openephys.DESCRIPTOR,
    adzmq.DESCRIPTOR,
    pymultivideo.DESCRIPTOR,
    karabo.DESCRIPTOR,
    reqrep.DESCRIPTOR,
    raw.DESCRIPTOR,
)
_BY_NAME = {d.name: d for d in _REGISTERED}


def descriptors() -> tuple[ProtocolDescriptor, ...]:
    return _REGISTERED


def names() -> list[str]:
    return sorted(_BY_NAME)


def get(name: str) -> ProtocolDescriptor:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UsageError(f"unknown protocol {name!r} (known: {', '.join(names())})") from None


def lookup(name: str) -> ProtocolDescriptor:
    """`get` for names read from a run: one this version does not know (`auto` that never saw
    a message, a newer recorder's protocol) reads as raw, frames only."""
    return _BY_NAME.get(name, raw.DESCRIPTOR)


def codec_for(name: str) -> Codec:
    """A fresh codec (codecs may keep per-stream state, so never share one between streams)."""
    return get(name).codec()
