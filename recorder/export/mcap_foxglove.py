"""What Foxglove can show of a stream, beside its raw frames: images as `foxglove.RawImage`
and the decoded scalar columns (NDAttributes, Karabo scalars, Open Ephys header fields) as
JSON messages its Plot and Raw Messages panels read.

Both are views, made by decoding each message with its protocol's codec as the recorder did
when it stored it; the raw channel stays the record. JSON is used because Foxglove reads
JSON-schema channels without any generated code (the protobuf schemas would need
foxglove-schemas-protobuf, which the recorder does not depend on).
"""

from __future__ import annotations

import base64
import json
import math
import re
from typing import Any

import numpy as np
from mcap.writer import Writer

from recorder.analysis.images import IMAGE
from recorder.errors import MalformedMessage, StoreError
from recorder.export import mcap_framing as fr
from recorder.protocols import lookup
from recorder.protocols.base import BulkFrame, Codec
from recorder.store import layout
from recorder.store.reader import Message, StreamReader

RAW_IMAGE = "foxglove.RawImage"
_TIME = {
    "type": "object",
    "title": "time",
    "properties": {
        "sec": {"type": "integer", "minimum": 0},
        "nsec": {"type": "integer", "minimum": 0, "maximum": 999_999_999},
    },
}
RAW_IMAGE_SCHEMA = {
    "title": RAW_IMAGE,
    "description": "A raw image (Foxglove's RawImage in its JSON form: data is base64)",
    "type": "object",
    "properties": {
        "timestamp": {**_TIME, "description": "Timestamp of image (receive time)"},
        "frame_id": {"type": "string", "description": "Frame of reference (the stream)"},
        "width": {"type": "integer", "minimum": 0, "description": "Image width"},
        "height": {"type": "integer", "minimum": 0, "description": "Image height"},
        "encoding": {"type": "string", "description": "Encoding of the raw image data"},
        "step": {"type": "integer", "minimum": 0, "description": "Byte length of one row"},
        "data": {"type": "string", "contentEncoding": "base64", "description": "Image data"},
    },
}
_RESERVED = ("timestamp", "seq")
"""Fields every columns message has before the stream's own columns."""
_FIELD_RE = re.compile(r"[^A-Za-z0-9_]+")


def time_of(ns: int) -> dict[str, int]:
    sec, nsec = divmod(max(0, ns), 1_000_000_000)
    return {"sec": sec, "nsec": nsec}


def field_names(columns: list[str]) -> dict[str, str]:
    """Column name -> JSON field name Foxglove's message paths can address (`/cam/columns.
    ndattr_Exposure`): letters, digits and `_` only; a clash gets `_2`, `_3` ..."""
    taken = set(_RESERVED)
    out = {}
    for name in columns:
        base = _FIELD_RE.sub("_", name).strip("_") or "column"
        if base[0].isdigit():
            base = "_" + base
        field, n = base, 1
        while field in taken:
            n += 1
            field = f"{base}_{n}"
        taken.add(field)
        out[name] = field
    return out


def _json_type(dtype: np.dtype | None) -> list[str]:
    kind = None if dtype is None else dtype.kind
    if kind in ("i", "u"):
        return ["integer", "null"]
    if kind == "f":
        return ["number", "null"]
    if kind == "b":
        return ["boolean", "null"]
    if kind is None:
        return ["number", "integer", "string", "boolean", "null"]
    return ["string", "null"]


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN or infinity
    return value


def raw_image(bulk: BulkFrame) -> tuple[int, int, str, np.ndarray] | None:
    """(width, height, encoding, C-order pixels) as RawImage wants them, or None for an image
    Foxglove cannot show (the raw channel still has it).

    Mono uint8 and uint16 go as they are (mono8, mono16: little endian), float32 as 32FC1,
    other mono types as float32 (32FC1); RGB uint8 as rgb8 with the color axis last."""
    a, dims = bulk.array, bulk.dims
    if a.ndim == 1:
        a, dims = a.reshape(1, -1), ("y", "x")
    if a.ndim == 2:
        if a.dtype.kind == "u" and a.dtype.itemsize == 1:
            return a.shape[1], a.shape[0], "mono8", a
        if a.dtype.kind == "u" and a.dtype.itemsize == 2:
            return a.shape[1], a.shape[0], "mono16", a.astype("<u2", copy=False)
        return a.shape[1], a.shape[0], "32FC1", a.astype("<f4", copy=False)
    if a.ndim == 3 and dims is not None and set(dims) == {"y", "x", "color"}:
        a = np.transpose(a, [dims.index("y"), dims.index("x"), dims.index("color")])
        if a.shape[2] == 3 and a.dtype == np.uint8:
            return a.shape[1], a.shape[0], "rgb8", a
    return None


class StreamViews:
    """The Foxglove channels of one stream (an image channel when the stream has images, a
    columns channel when it has decoded columns) and how each message becomes theirs."""

    def __init__(self, writer: Writer, reader: StreamReader, image_schema: int | None):
        self.writer = writer
        self.codec: Codec = lookup(reader.protocol).codec()  # an unknown protocol: raw
        self.name = reader.name
        self.image: int | None = None
        self.columns: int | None = None
        if image_schema is not None:
            self.image = writer.register_channel(
                topic=f"/{reader.name}/image",
                message_encoding="json",
                schema_id=image_schema,
                metadata=_metadata(reader, fr.KIND_IMAGE),
            )
        names = [layout.valid_text(n) for n in (reader.attrs.get("columns") or {})]
        self.fields = field_names(names)
        if self.fields:
            props: dict[str, Any] = {
                "timestamp": {**_TIME, "description": "receive time"},
                "seq": {"type": ["integer", "null"], "description": "sequence number"},
            }
            for name, field in self.fields.items():
                props[field] = {"type": _json_type(_dtype(reader, name)), "description": name}
            schema = {
                "title": f"zmq_recorder.columns.{reader.name}",
                "description": f"decoded columns of stream {reader.name}",
                "type": "object",
                "properties": props,
            }
            schema_id = writer.register_schema(
                name=f"zmq_recorder.columns.{reader.name}",
                encoding="jsonschema",
                data=json.dumps(schema).encode(),
            )
            meta = _metadata(reader, fr.KIND_COLUMNS)
            meta[fr.COLUMN_FIELDS] = json.dumps(self.fields)
            self.columns = writer.register_channel(
                topic=f"/{reader.name}/columns",
                message_encoding="json",
                schema_id=schema_id,
                metadata=meta,
            )

    @property
    def empty(self) -> bool:
        return self.image is None and self.columns is None

    def write(self, msg: Message, publish_time: int) -> None:
        try:
            decoded = self.codec.decode(msg.frames)
        except MalformedMessage:
            return  # rejected when recorded too: only its raw frames exist
        if self.image is not None:
            for bulk in decoded.bulk:
                if bulk.name == IMAGE:
                    self._image(msg, bulk, publish_time)
                    break
        if self.columns is not None and decoded.columns:
            body: dict[str, Any] = {
                "timestamp": time_of(msg.recv_ns),
                "seq": msg.seq if msg.seq >= 0 else None,
            }
            for name, value in decoded.columns.items():
                field = self.fields.get(layout.valid_text(name))
                if field is not None:  # else a column the store dropped (over its cap)
                    body[field] = _json_value(value)
            data = json.dumps(body, separators=(",", ":")).encode()
            self.writer.add_message(self.columns, msg.recv_ns, data, publish_time)

    def _image(self, msg: Message, bulk: BulkFrame, publish_time: int) -> None:
        assert self.image is not None
        shown = raw_image(bulk)
        if shown is None:
            return
        width, height, encoding, pixels = shown
        head = {
            "timestamp": time_of(msg.recv_ns),
            "frame_id": self.name,
            "width": width,
            "height": height,
            "encoding": encoding,
            "step": width * pixels.dtype.itemsize * (pixels.shape[2] if pixels.ndim == 3 else 1),
        }
        text = json.dumps(head, separators=(",", ":"))
        data = b"".join(
            [
                text[:-1].encode(),
                b',"data":"',
                base64.b64encode(np.ascontiguousarray(pixels).data),
                b'"}',
            ]
        )
        self.writer.add_message(self.image, msg.recv_ns, data, publish_time)


def _dtype(reader: StreamReader, name: str) -> np.dtype | None:
    try:
        return reader.column(name, 0, 0).dtype
    except (StoreError, KeyError, ValueError):
        return None


def _metadata(reader: StreamReader, kind: str) -> dict[str, str]:
    return {fr.KIND: kind, fr.STREAM: reader.name, fr.PROTOCOL: reader.protocol}


def has_images(reader: StreamReader) -> bool:
    return IMAGE in reader.array_names()
