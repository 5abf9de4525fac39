"""Guess a stream's wire protocol from its first few messages.

Each message is classified by cheap, protocol-specific marks (envelope bytes, the first bytes of
a JSON or msgpack header); the stream gets the label most messages agree on. Anything unclear is
``raw``, which records every frame verbatim and so is always safe. The checks live here rather
than in the protocol modules so that detection never depends on a full decoder being importable.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import islice

import msgpack

from recorder.protocols.base import FrameBytes

MAX_MESSAGES = 10
_MAX_HEADER = 1 << 16
"""JSON / msgpack headers of these protocols are small; bigger first frames are not headers."""

_OPENEPHYS_ENVELOPES = (b"DATA\x00", b"EVENT\x00")
_EVENT_BROADCASTER_TYPES = (b"\x00\x00", b"\x01\x00")
_ADZMQ_HTYPES = ("array-1.0", ["array-1.0"], ["chunk-1.0"])
_NEUTRAL = "neutral"
"""Messages that fit a protocol but do not identify it (ADZMQ's 4-byte ``STOP``)."""


def _json_map(frame: FrameBytes) -> dict | None:
    data = bytes(frame)
    if len(data) > _MAX_HEADER or not data.lstrip().startswith(b"{"):
        return None
    value = json.loads(data.decode("utf-8"))
    return value if isinstance(value, dict) else None


def _msgpack_map(frame: FrameBytes, limit: int | None = _MAX_HEADER) -> dict | None:
    if limit is not None and memoryview(frame).nbytes > limit:
        return None
    value = msgpack.unpackb(frame, raw=False, strict_map_key=False)
    return value if isinstance(value, dict) else None


def _classify(frames: Sequence[FrameBytes]) -> str | None:
    n = len(frames)
    if n == 0:
        return None
    first = bytes(memoryview(frames[0]).cast("B")[:16])  # envelopes are short: no full copy
    if n >= 2 and first in _OPENEPHYS_ENVELOPES:
        return "openephys" if _json_map(frames[1]) is not None else None
    if n == 2 and first in _EVENT_BROADCASTER_TYPES:
        return "openephys"  # Event Broadcaster plugin: uint16 type, then JSON or binary
    if n == 3 and first == b"image":
        meta = _msgpack_map(frames[1])
        return "pymultivideo" if meta and {"unique_id", "height", "width"} <= set(meta) else None
    if n == 1 and first == b"STOP":
        return _NEUTRAL
    if n == 2 and first.lstrip().startswith(b"{"):
        header = _json_map(frames[0])
        return "adzmq" if header and header.get("htype") in _ADZMQ_HTYPES else None
    if n >= 2 and n % 2 == 0:
        header = _msgpack_map(frames[0])
        return "karabo" if header and {"source", "content"} <= set(header) else None
    if n == 1:
        train = _msgpack_map(frames[0], limit=None)
        if train and all(isinstance(v, dict) and "metadata" in v for v in train.values()):
            return "karabo"
    return None


def detect_protocol(messages: Iterable[Sequence[FrameBytes]]) -> str:
    """Name of the protocol most of the first `MAX_MESSAGES` messages fit, else ``raw``.

    Never raises: a message that breaks a check simply fits no protocol.
    """
    votes: Counter[str] = Counter()
    counted = 0
    try:
        sample = list(islice(messages, MAX_MESSAGES))
    except Exception:  # not even a list of messages
        return "raw"
    for frames in sample:
        try:
            label = _classify(frames)
        except Exception:  # garbage of any kind is just "not this protocol"
            label = None
        if label == _NEUTRAL:
            continue
        counted += 1
        if label is not None:
            votes[label] += 1
    if not votes:
        return "raw"
    name, count = votes.most_common(1)[0]
    return name if 2 * count > counted else "raw"
