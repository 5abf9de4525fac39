"""pyMultiVideo camera streams (pyMultiVideo/code, image_processing_dev, GUI/image_socket.py).

Per camera the GUI binds PUB and publishes the latest frame at ``put_rate`` (10 Hz) as three
frames: ``b"image"``, ``msgpack.packb(meta)`` with keys ``unique_id`` (str), ``timestamp`` (int ns,
the first may be 0), ``height``, ``width``, then the raw uint8 mono image, row-major. There is no
frame counter, so gaps cannot be counted (seq NO_SEQ). Analysis clients PUSH JSON commands such
as ``{"DRAW_BOX": {...}}`` back to the camera's PULL socket; `encode_draw_box` builds one.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Sequence

import msgpack
import numpy as np

from recorder.errors import MalformedMessage
from recorder.protocols.base import NO_SEQ, BulkFrame, Decoded, FrameBytes, as_array, frame_sizes
from recorder.protocols.descriptor import (
    BACKCHANNEL,
    Demo,
    ProtocolDescriptor,
    StreamMeaning,
    head,
    msgpack_map,
    sniffer,
)

NAME = "pymultivideo"
TOPIC = b"image"
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def encode_frame(image: np.ndarray, *, unique_id: str, timestamp: int) -> list[bytes]:
    """The three frames the GUI publishes for one uint8 mono image of shape (height, width)."""
    img = np.ascontiguousarray(image)
    if img.dtype != np.uint8 or img.ndim != 2:
        raise ValueError("pyMultiVideo publishes 2-D uint8 mono images")
    height, width = img.shape
    meta = {"unique_id": unique_id, "timestamp": int(timestamp), "height": height, "width": width}
    return [TOPIC, msgpack.packb(meta), img.tobytes()]


def encode_draw_box(top_left: Sequence[int], bottom_right: Sequence[int]) -> bytes:
    """Back-channel command as the example client sends it (``json.dumps`` separators)."""
    box = {"TOP_LEFT": [int(v) for v in top_left], "BOTTOM_RIGHT": [int(v) for v in bottom_right]}
    return json.dumps({"DRAW_BOX": box}).encode()


def _int(meta: dict, key: str, minimum: int) -> int:
    if key not in meta:
        raise MalformedMessage(f"meta has no {key!r}")
    v = meta[key]
    if not isinstance(v, int) or isinstance(v, bool):
        raise MalformedMessage(f"meta.{key} is {type(v).__name__}, not an integer")
    if not minimum <= v <= _INT64_MAX:
        raise MalformedMessage(f"meta.{key} = {v} is out of range")
    return v


_META_KEYS = ("unique_id", "timestamp", "height", "width")


def _extra_columns(meta: dict, out: dict[str, int | float | str | bool]) -> None:
    """meta keys beyond today's four (a newer GUI's), typed; others as JSON text."""
    for key, value in meta.items():
        if not isinstance(key, str) or key in _META_KEYS:
            continue
        if isinstance(value, bool | str | float) or (
            isinstance(value, int) and _INT64_MIN <= value <= _INT64_MAX
        ):
            out[key] = value
        elif isinstance(value, list | dict):
            with contextlib.suppress(TypeError, ValueError, RecursionError):  # the frame keeps it
                out[key] = json.dumps(value, separators=(",", ":"), default=repr)


class PyMultiVideoCodec:
    """Decoder of pyMultiVideo image messages."""

    name = NAME

    def decode(self, frames: Sequence[FrameBytes]) -> Decoded:
        sizes = frame_sizes(frames)
        n = len(sizes)
        if n != 3:
            raise MalformedMessage(f"a pyMultiVideo image needs 3 frames, got {n}")
        if sizes[0] != len(TOPIC) or bytes(frames[0]) != TOPIC:
            first = bytes(memoryview(frames[0])[:16])
            raise MalformedMessage(f"first frame is {first!r}, not b'image'")
        try:
            meta = msgpack.unpackb(frames[1], raw=False)
        except Exception as exc:  # msgpack raises many types (ValueError, ExtraData, StackError...)
            raise MalformedMessage(f"meta is not valid msgpack: {exc}") from None
        if not isinstance(meta, dict):
            raise MalformedMessage(f"meta is {type(meta).__name__}, not a map")
        unique_id = meta.get("unique_id")
        if not isinstance(unique_id, str):
            raise MalformedMessage(f"meta.unique_id is {type(unique_id).__name__}, not a string")
        timestamp = _int(meta, "timestamp", _INT64_MIN)
        height = _int(meta, "height", 0)
        width = _int(meta, "width", 0)
        if sizes[2] != math.prod((height, width)):
            raise MalformedMessage(
                f"image is {sizes[2]} bytes but {height}x{width} uint8 needs {height * width}"
            )
        image = as_array(frames[2], np.uint8, (height, width))
        columns: dict[str, int | float | str | bool] = {"unique_id": unique_id}
        if len(meta) > len(_META_KEYS):
            _extra_columns(meta, columns)
        bulk = [BulkFrame(2, "image", image, dims=("y", "x"))]
        return Decoded("image", NO_SEQ, "", timestamp, bulk, columns)


@sniffer
def sniff(frames: Sequence[FrameBytes]) -> str | None:
    """``pymultivideo`` for ``b"image"``, a msgpack map with the frame's keys, and a payload."""
    if len(frames) != 3 or head(frames[0]) != TOPIC:
        return None
    meta = msgpack_map(frames[1])
    return NAME if meta and {"unique_id", "height", "width"} <= set(meta) else None


DESCRIPTOR = ProtocolDescriptor(
    name=NAME,
    codec=PyMultiVideoCodec,
    default_socket="SUB",
    replay_controls=(BACKCHANNEL,),
    sniff=sniff,
    simulator="recorder.simulators.pymultivideo:PyMultiVideoSimulator",
    demo=Demo(options={"rate": 10}),
    meaning=StreamMeaning(
        seq="",  # the GUI sends no frame counter
        source_time="meta timestamp: the camera's frame timestamp in ns (its own clock; the "
        "first frame may say 0)",
        source_epoch=None,
        columns={
            "unique_id": "camera id the frame comes from",
            "image": "uint8 mono frame, dims (y, x) = (height, width)",
        },
    ),
)
