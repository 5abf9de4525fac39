"""The `raw` protocol: any ZeroMQ stream, every frame kept verbatim, nothing interpreted."""

from __future__ import annotations

from collections.abc import Sequence

from recorder.protocols.base import Decoded, FrameBytes
from recorder.protocols.descriptor import Demo, ProtocolDescriptor, StreamMeaning

NAME = "raw"
"""Frames only: what a stream falls back to when nothing more is known."""


class RawCodec:
    name = NAME
    verbatim = True  # decode() reads nothing: batches are stored as they came

    def decode(self, frames: Sequence[FrameBytes]) -> Decoded:
        return Decoded()


DESCRIPTOR = ProtocolDescriptor(
    name=NAME,
    codec=RawCodec,
    default_socket="SUB",
    sniff=None,  # what `--protocol auto` falls back to: never claimed by a sniff
    simulator="recorder.simulators.raw:RawSimulator",
    demo=Demo(options={"rate": 20}),
    meaning=StreamMeaning(seq="", source_time=""),  # frames only: nothing is interpreted
)
