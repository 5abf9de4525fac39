"""Wire protocols the recorder speaks, one descriptor each: ask `get(name)`, never a name."""

from __future__ import annotations

from recorder.protocols.descriptor import ProtocolDescriptor
from recorder.protocols.raw import NAME as RAW
from recorder.protocols.registry import codec_for, descriptors, get, lookup, names

__all__ = ["RAW", "ProtocolDescriptor", "codec_for", "descriptors", "get", "lookup", "names"]
