"""What Foxglove can show of a stream, beside its raw frames: images as `foxglove.RawImage`
and the decoded scalar columns (NDAttributes, Karabo scalars, Open Ephys header fields) as
JSON messages its Plot and Raw Messages panels read.

Both are views; the raw channel stays the record. Images are cut out of the message by its
protocol's codec (as the recorder did when it stored them), columns read from the store
(mcap_columns). JSON is used because Foxglove reads
JSON-schema channels without any generated code (the protobuf schemas would need
foxglove-schemas-protobuf, which the recorder does not depend on).
"""

from __future__ import annotations

import base64
import json

import numpy as np
from mcap.writer import Writer

from recorder.analysis.images import IMAGE
from recorder.errors import MalformedMessage
from recorder.export import mcap_framing as fr
from recorder.export.mcap_columns import TIME_SCHEMA, ColumnBlocks
from recorder.protocols import lookup
from recorder.protocols.base import BulkFrame, Codec
from recorder.store.reader import Message, StreamReader

RAW_IMAGE = "foxglove.RawImage"
RAW_IMAGE_SCHEMA = {
    "title": RAW_IMAGE,
    "description": "A raw image (Foxglove's RawImage in its JSON form: data is base64)",
    "type": "object",
    "properties": {
        "timestamp": {**TIME_SCHEMA, "description": "Timestamp of image (receive time)"},
        "frame_id": {"type": "string", "description": "Frame of reference (the stream)"},
        "width": {"type": "integer", "minimum": 0, "description": "Image width"},
        "height": {"type": "integer", "minimum": 0, "description": "Image height"},
        "encoding": {"type": "string", "description": "Encoding of the raw image data"},
        "step": {"type": "integer", "minimum": 0, "description": "Byte length of one row"},
        "data": {"type": "string", "contentEncoding": "base64", "description": "Image data"},
    },
}


def time_of(ns: int) -> dict[str, int]:
    sec, nsec = divmod(max(0, ns), 1_000_000_000)
    return {"sec": sec, "nsec": nsec}


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

    def __init__(
        self, writer: Writer, reader: StreamReader, lo: int, hi: int, image_schema: int | None
    ):
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
        self.blocks = ColumnBlocks(reader, lo, hi)
        if self.blocks.names:
            schema_id = writer.register_schema(
                name=f"zmq_recorder.columns.{reader.name}",
                encoding="jsonschema",
                data=json.dumps(self.blocks.schema()).encode(),
            )
            meta = _metadata(reader, fr.KIND_COLUMNS)
            meta[fr.COLUMN_FIELDS] = json.dumps(
                {n: self.blocks.fields[n] for n in self.blocks.names}
            )
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
        if self.image is not None:
            try:
                decoded = self.codec.decode(msg.frames)
            except MalformedMessage:
                decoded = None  # rejected when recorded too: only its raw frames exist
            for bulk in decoded.bulk if decoded is not None else ():
                if bulk.name == IMAGE:
                    self._image(msg, bulk, publish_time)
                    break
        if self.columns is not None:
            data = self.blocks.message(msg.index, msg.recv_ns, msg.seq)
            if data is not None:
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


def _metadata(reader: StreamReader, kind: str) -> dict[str, str]:
    return {fr.KIND: kind, fr.STREAM: reader.name, fr.PROTOCOL: reader.protocol}


def has_images(reader: StreamReader) -> bool:
    return IMAGE in reader.array_names()
