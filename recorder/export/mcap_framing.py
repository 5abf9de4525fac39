"""How a ZeroMQ multipart message travels as one MCAP message, and what a channel says about
the stream it came from: shared by the export and the import, so the two cannot drift apart.

A message record has one byte string; a ZeroMQ message is a list of frames (an ADZMQ header
and its image, a Karabo train's msgpack and arrays). The framing keeps the frame boundaries
with as little as possible in front of the bytes: the frame count and every frame's length,
then the frames themselves, untouched and in order.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from recorder.errors import ExportError

MESSAGE_ENCODING = "zmq-multipart"
"""Channel `message_encoding` of the raw-frames channels (no schema: the bytes are the wire's)."""
FRAMING = "zmq-multipart/1"
"""Channel metadata `framing`: u32 frame count, u64 length per frame (little endian), frames."""

# channel metadata keys (values are text: MCAP metadata maps strings to strings)
KIND = "zmq_recorder.kind"  # raw | image | columns
STREAM = "zmq_recorder.stream"
PROTOCOL = "zmq_recorder.protocol"
ENDPOINT = "zmq_recorder.endpoint"
SOCKET_TYPE = "zmq_recorder.socket_type"
ROLE = "zmq_recorder.role"
OPTIONS = "zmq_recorder.options"  # JSON object
FRAMING_KEY = "zmq_recorder.framing"
COLUMN_FIELDS = "zmq_recorder.column_fields"  # JSON: column name -> field of the JSON message
KIND_RAW, KIND_IMAGE, KIND_COLUMNS = "raw", "image", "columns"
KIND_MARKERS = "markers"  # the users' markers (JSON), not a stream: imported as markers

RUN_METADATA = "zmq_recorder.run"
"""Name of the file's metadata record holding the export's provenance."""
SESSION_METADATA = "zmq_recorder.session"
"""Name of the metadata record holding the session the run was recorded in (if any)."""
PAUSES_METADATA = "zmq_recorder.pauses"
"""Name of the metadata record holding the run's deliberate pauses (if any)."""

_COUNT = struct.Struct("<I")


def pack(frames: Sequence[bytes | memoryview]) -> bytes:
    """One byte string for a multipart message (frames are copied once, here)."""
    n = len(frames)
    head = _COUNT.pack(n) + struct.pack(f"<{n}Q", *(memoryview(f).nbytes for f in frames))
    return b"".join([head, *frames])


def unpack(data: bytes | memoryview) -> list[bytes]:
    """The frames of a message `pack` wrote; ExportError when the bytes are not such a message
    (a damaged file, or a channel that only claims this framing)."""
    view = memoryview(data)
    if view.nbytes < _COUNT.size:
        raise ExportError(f"a {FRAMING} message needs at least 4 bytes, got {view.nbytes}")
    (n,) = _COUNT.unpack_from(view)
    start = _COUNT.size + 8 * n
    if start > view.nbytes:
        raise ExportError(f"a {FRAMING} message of {n} frames is only {view.nbytes} bytes long")
    lengths = struct.unpack_from(f"<{n}Q", view, _COUNT.size)
    if start + sum(lengths) != view.nbytes:
        raise ExportError(
            f"a {FRAMING} message's frames add up to {sum(lengths)} bytes, "
            f"but it holds {view.nbytes - start}"
        )
    frames = []
    for length in lengths:
        frames.append(bytes(view[start : start + length]))
        start += length
    return frames
