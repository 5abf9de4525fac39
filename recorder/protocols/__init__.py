"""Wire protocols the recorder speaks; `codec_for(name)` is the one way in."""

from __future__ import annotations

from recorder.errors import UsageError
from recorder.protocols.base import Codec
from recorder.protocols.raw import RawCodec

_CODECS: dict[str, type] = {"raw": RawCodec}


def register(name: str, codec_cls: type) -> None:
    _CODECS[name] = codec_cls


def protocol_names() -> list[str]:
    return sorted(_CODECS)


def codec_for(name: str) -> Codec:
    try:
        return _CODECS[name]()
    except KeyError:
        raise UsageError(
            f"unknown protocol {name!r} (known: {', '.join(protocol_names())})"
        ) from None
