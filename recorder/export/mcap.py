"""MCAP export: every stream as a channel of its messages exactly as they were on the wire,
so Foxglove (or any MCAP reader) can scrub a run, and `recorder import` can turn the file back
into a run that replays byte for byte (docs/export/mcap.md).

Messages of all streams are written in receive-time order (log time = receive time), read
block by block and merged as `RunReader.messages` merges them, so memory stays flat in run
length: the writer holds one chunk at a time.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterator
from pathlib import Path

from mcap.writer import CompressionType, Writer

from recorder import __version__
from recorder.export import mcap_framing as fr
from recorder.export.base import ExportContext, Progress, StreamWindow, Tally
from recorder.export.mcap_foxglove import RAW_IMAGE, RAW_IMAGE_SCHEMA, StreamViews, has_images
from recorder.store.reader import Message, StreamReader

CHUNK_BYTES = 4 << 20
"""Uncompressed bytes per MCAP chunk: a few images, thousands of small messages."""
_U32 = (1 << 32) - 1
_U64 = (1 << 64) - 1


def _text(values: dict) -> dict[str, str]:
    """MCAP metadata maps text to text: strings stay as they are, anything else is JSON."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}


def stream_metadata(reader: StreamReader, kind: str) -> dict[str, str]:
    """What a channel says about its stream: enough for the import to rebuild it."""
    return {
        fr.KIND: kind,
        fr.STREAM: reader.name,
        fr.PROTOCOL: reader.protocol,
        fr.ENDPOINT: reader.endpoint,
        fr.SOCKET_TYPE: reader.socket_type,
        fr.ROLE: reader.role,
        fr.OPTIONS: json.dumps(reader.attrs.get("options") or {}, sort_keys=True),
    }


def merged(windows: list[StreamWindow]) -> Iterator[Message]:
    """The windows' messages in receive-time order (ties: in the order of the windows; heapq
    keeps its inputs' order among equal keys)."""
    iters = [w.reader.messages(w.lo, w.hi) for w in windows]
    yield from heapq.merge(*iters, key=lambda m: m.recv_ns)


def publish_time(msg: Message) -> int:
    """The source's own time where it gave one, else the receive time."""
    return msg.source_ns if 0 <= msg.source_ns <= _U64 else msg.recv_ns


def sequence(msg: Message) -> int:
    """MCAP sequence numbers are u32: a protocol number outside that range is left out (0);
    the raw frames still carry it."""
    return msg.seq if 0 <= msg.seq <= _U32 else 0


class McapTarget:
    name = "mcap"
    suffix = ".mcap"
    description = (
        "every stream as MCAP channels (raw frames as on the wire, images as foxglove.RawImage, "
        "scalar columns as JSON) for Foxglove; `recorder import` reads it back"
    )

    def __init__(self, *, views: bool = True):
        self.views = views  # False: raw-frames channels only (the benchmark's breakdown)

    def cannot_hold(self, stream: StreamReader) -> str | None:
        return None  # any protocol: the raw frames are kept as they came

    def write(self, ctx: ExportContext, out: Path, progress: Progress) -> None:
        with open(out, "wb") as f:
            writer = Writer(f, chunk_size=CHUNK_BYTES, compression=CompressionType.ZSTD)
            writer.start(profile="", library=f"zmq-recorder {__version__}")
            writer.add_metadata(fr.RUN_METADATA, _text(ctx.provenance))
            if ctx.session is not None:
                writer.add_metadata(fr.SESSION_METADATA, _text(dict(ctx.session)))
            pauses = ctx.pauses()
            if pauses:
                writer.add_metadata(fr.PAUSES_METADATA, {"pauses": json.dumps(pauses)})
            raw, views = _channels(writer, ctx.windows, self.views)
            markers = _Markers(writer, ctx)
            tally = Tally(sum(w.count for w in ctx.windows), progress)
            for msg in merged(ctx.windows):
                markers.until(msg.recv_ns)
                published = publish_time(msg)
                writer.add_message(
                    raw[msg.stream],
                    log_time=msg.recv_ns,
                    data=fr.pack(msg.frames),
                    publish_time=published,
                    sequence=sequence(msg),
                )
                shown = views.get(msg.stream)
                if shown is not None:
                    shown.write(msg, published)
                tally.add()
            markers.until(None)
            writer.finish()


MARKER_SCHEMA = {
    "type": "object",
    "title": "zmq_recorder.Marker",
    "properties": {
        "text": {"type": "string"},
        "author": {"type": "string"},
        "recv_ns": {"type": "integer"},
    },
}


class _Markers:
    """The run's markers (in the export window) as JSON messages on a `/markers` channel,
    log time = receive time, written in time order between the streams' messages."""

    def __init__(self, writer: Writer, ctx: ExportContext):
        self.writer, self.pending = writer, ctx.markers()
        self.channel = 0
        if self.pending:
            schema = writer.register_schema(
                "zmq_recorder.Marker", "jsonschema", json.dumps(MARKER_SCHEMA).encode()
            )
            self.channel = writer.register_channel(
                topic="/markers",
                message_encoding="json",
                schema_id=schema,
                metadata={fr.KIND: fr.KIND_MARKERS},
            )
        self.sent = 0

    def until(self, recv_ns: int | None) -> None:
        """Write the markers received up to recv_ns (None: all that are left)."""
        while self.sent < len(self.pending):
            m = self.pending[self.sent]
            if recv_ns is not None and m["recv_ns"] > recv_ns:
                return
            body = {"text": m["text"], "author": m.get("author", ""), "recv_ns": m["recv_ns"]}
            self.writer.add_message(
                self.channel,
                log_time=m["recv_ns"],
                data=json.dumps(body).encode(),
                publish_time=m["recv_ns"],
                sequence=self.sent,
            )
            self.sent += 1


def _channels(
    writer: Writer, windows: list[StreamWindow], with_views: bool
) -> tuple[dict[str, int], dict[str, StreamViews]]:
    """Register every stream's raw channel (and its Foxglove views): (raw channel id by
    stream, views by stream for the streams that have any)."""
    raw: dict[str, int] = {}
    views: dict[str, StreamViews] = {}
    image_schema: int | None = None
    for w in windows:
        meta = stream_metadata(w.reader, fr.KIND_RAW)
        meta[fr.FRAMING_KEY] = fr.FRAMING
        raw[w.name] = writer.register_channel(
            topic=f"/{w.name}/raw",
            message_encoding=fr.MESSAGE_ENCODING,
            schema_id=0,
            metadata=meta,
        )
        if not with_views:
            continue
        images = has_images(w.reader)
        if images and image_schema is None:
            image_schema = writer.register_schema(
                RAW_IMAGE, "jsonschema", json.dumps(RAW_IMAGE_SCHEMA).encode()
            )
        view = StreamViews(writer, w.reader, w.lo, w.hi, image_schema if images else None)
        if not view.empty:
            views[w.name] = view
    return raw, views


TARGET = McapTarget()
