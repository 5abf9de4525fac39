"""Wire protocols the recorder speaks; `codec_for(name)` is the one way in."""

from __future__ import annotations

from recorder.errors import UsageError
from recorder.protocols.adzmq import AdzmqCodec
from recorder.protocols.base import Codec
from recorder.protocols.karabo import KaraboCodec
from recorder.protocols.openephys import OpenEphysCodec
from recorder.protocols.pymultivideo import PyMultiVideoCodec
from recorder.protocols.raw import RawCodec
from recorder.protocols.reqrep import ReqRepCodec

_CODECS: dict[str, type] = {
    c.name: c
    for c in (RawCodec, OpenEphysCodec, AdzmqCodec, PyMultiVideoCodec, KaraboCodec, ReqRepCodec)
}


def protocol_names() -> list[str]:
    return sorted(_CODECS)


def codec_for(name: str) -> Codec:
    """A fresh codec (codecs may keep per-stream state, so never share one between streams)."""
    try:
        return _CODECS[name]()
    except KeyError:
        raise UsageError(
            f"unknown protocol {name!r} (known: {', '.join(protocol_names())})"
        ) from None
