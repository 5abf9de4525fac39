"""The `raw` protocol: any ZeroMQ stream, every frame kept verbatim, nothing interpreted."""

from __future__ import annotations

from collections.abc import Sequence

from recorder.protocols.base import Decoded, FrameBytes


class RawCodec:
    name = "raw"

    def decode(self, frames: Sequence[FrameBytes]) -> Decoded:
        return Decoded()
