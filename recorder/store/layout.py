"""Names, dtypes and chunk sizes of the run format (docs/format.md is the contract).

Everything that decides where bytes live in a run is here, so the writer, the reader and the
repair code cannot disagree about it.
"""

from __future__ import annotations

import re

import numpy as np

from recorder.errors import UsageError

FORMAT_NAME = "zmq-recorder-run"
FORMAT_VERSION = 2
#: Versions this code can read. Reading anything else is refused, never guessed.
READABLE_VERSIONS = frozenset({1, 2})
FORMAT_DOC = (
    "docs/format.md of zmq-recorder (https://github.com/zmq-recorder/zmq-recorder): "
    "the run format, version 2"
)

RUNS_DIR = "runs"
SESSIONS_DIR = "sessions"  # <data>/sessions/<session id>.json
STREAMS_GROUP = "streams"
ANNOTATIONS_GROUP = "annotations"
DATA_GROUP = "data"  # format 2: typed arrays, one group per array family

# Dimension names (format 2: every array has zarr v3 `dimension_names`, so xarray opens it).
MESSAGE_DIM = "message"
FRAME_DIM = "zmq_frame"  # rows of the frame table (parts of multipart messages)
HEAP_DIM = "heap_byte"
REJECT_DIM = "reject"
STACKED_DIM = "frame"  # rows of a stacked typed array: one per message that carried it
RAGGED_DIM = "row"  # rows of a ragged typed array when the source does not name its first axis
SAMPLE_DIM = "sample"
CHANNEL_DIM = "channel"
#: Names a family group uses for its coordinates: the values array never takes one of them.
FAMILY_RESERVED = frozenset(
    {"message", "first", "count", "recv_ns", "seq", "sample", "channel", "time"}
)

# Per-message columns of a stream: name -> dtype.
MESSAGE_COLUMNS: dict[str, str] = {
    "recv_ns": "int64",  # host receive time, ns since the Unix epoch
    "seq": "int64",  # protocol sequence number, -1 when none
    "source_ns": "int64",  # the source's own timestamp in ns, -1 when none
    "first_frame": "int64",  # index of the message's first row in the frame table
    "n_frames": "int32",
    "flags": "uint8",  # FLAG_* bits
}
# Format 2: the missing value of a message column is its fill value (the sentinel readers see).
MESSAGE_FILL: dict[str, int] = {"seq": -1, "source_ns": -1}
MESSAGE_ATTRS: dict[str, dict] = {
    "recv_ns": {
        "units": "nanoseconds since 1970-01-01",
        "calendar": "proleptic_gregorian",
        "long_name": "host receive time",
    },
    "seq": {"long_name": "sequence number", "missing": -1},
    "source_ns": {"long_name": "source timestamp", "missing": -1},
    "first_frame": {"long_name": "row of the message's first frame in frames/"},
    "n_frames": {"long_name": "frames of the multipart message"},
    "flags": {"long_name": "bit 0: rejected (kept verbatim in the heap)"},
}
# Per-frame table: where each frame's bytes are.
FRAME_COLUMNS: dict[str, str] = {
    "segment": "int32",  # HEAP_SEGMENT: verbatim in the heap; else index into the segment list
    "offset": "int64",  # byte offset in the heap, or row index in the segment array
    "length": "int64",  # frame size in bytes
    "column": "int32",  # WHOLE_ROWS, or the column a placed frame fills (see placed.py)
}
HEAP_SEGMENT = -1
WHOLE_ROWS = -1  # the frame is whole row(s) of its segment (or lives in the heap)
FLAG_REJECTED = 1

#: A run keeps this much disk space aside until it closes, so that even on a full disk it can
#: still write its final status (`failed`, with the error) instead of staying `recording`.
#: It sits beside the run's folder: zarr warns about foreign files inside a group.
RESERVE_SUFFIX = ".reserve"
RESERVE_BYTES = 256 << 10

COLUMN_CHUNK = 65536  # rows per chunk of per-message/per-frame columns (512 KiB of int64)
# Scalar columns a protocol extracts (`columns/`). A stream's first WIDE_EXTRA_COLUMNS get
# COLUMN_CHUNK rows like the message columns: Open Ephys' dozen header fields at 30k messages a
# second wrote a 4096-row chunk file per column 7 times a second, a tenth of the writer's time.
# Columns past them get smaller chunks, since a flush rewrites the partial chunk of every
# column that got values and a stream may have many (a Karabo train hundreds of keys).
WIDE_EXTRA_COLUMNS = 32
EXTRA_COLUMN_CHUNK = 4096
# What one stream may grow to, so a source whose keys or shapes keep changing cannot stall the
# writer: past these, values stay only in the verbatim message bytes (nothing is lost for
# replay) and the stream's stats count them (`columns_dropped`, `segments_capped`).
MAX_COLUMNS = 1024  # scalar columns per stream
MAX_COLUMN_NAME_BYTES = 1 << 20  # their names together (UTF-8), kept in the stream attributes
MAX_SEGMENTS = 256  # typed arrays (segments) per stream
HEAP_CHUNK = 8 << 20  # bytes per heap chunk (a shard, in format 2)
SEGMENT_CHUNK_BYTES = 8 << 20  # target bytes per chunk (shard) of a typed array
SEGMENT_MAX_CHUNK_ROWS = 4096  # rows per shard of a stacked array: one piece per row in memory
RAGGED_MAX_CHUNK_ROWS = 1 << 20  # a ragged array gets one piece per message, not per row
#: Format 2: shards hold inner chunks of about this much, and only those rows reached are
#: written: the last shard of an array is as small as its data (plus one partial inner chunk).
INNER_CHUNK_BYTES = 64 << 10
#: When a stream closes, sharded arrays smaller than this become one exact chunk (compact.py):
#: below it, a partly filled inner chunk would waste more than 3 % of the array.
COMPACT_BELOW = 2 << 20
#: Compression of per-message, per-frame and scalar columns (format 2): small data, and the
#: padding of a column's last chunk compresses to nothing.
COLUMN_ZSTD_LEVEL = 1
# Placed segments (samples, channels): see recorder/store/placed.py.
PLACED_CHUNK_BYTES = 4 << 20  # target bytes per chunk (at least one block of rows)
PLACED_MAX_COLUMNS = 4096  # a channel index beyond this is not placed (keeps rows bounded)
PLACED_MAX_GAP_SECONDS = 10.0  # a larger jump ahead in sample numbers starts a new segment
PLACED_MAX_GAP_ROWS = 1 << 20  # the same limit when the sample rate is unknown

STATUS_RECORDING = "recording"
STATUS_COMPLETE = "complete"
STATUS_INTERRUPTED = "interrupted"
STATUS_FAILED = "failed"
STATUSES = (STATUS_RECORDING, STATUS_COMPLETE, STATUS_INTERRUPTED, STATUS_FAILED)

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


#: Per-stream compression of typed arrays and the heap: "none" keeps chunks as raw bytes (the
#: write path copies nothing); the others trade CPU for disk (docs/format.md, benchmarks/).
COMPRESSIONS = ("none", "zstd", "blosc-zstd")


def check_compression(name: str | None) -> str:
    if name is None:
        return "none"
    if name not in COMPRESSIONS:
        raise UsageError(f"unknown compression {name!r}: use one of {', '.join(COMPRESSIONS)}")
    return name


def check_name(kind: str, name: str) -> str:
    """Stream names and run ids become folder names: keep them to a safe alphabet."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or name in (".", ".."):
        raise UsageError(
            f"invalid {kind} {name!r}: use 1-64 letters, digits, '_', '.', '-', "
            "starting with a letter or digit"
        )
    return name


def valid_text(text: str) -> str:
    """Text from the wire as UTF-8 can hold it: a lone surrogate (a JSON header may carry
    "\\ud800") would fail the write of the attributes or of a string column, so it is kept
    as the 6 characters of its escape instead."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def segment_chunk_rows(row_shape: tuple[int, ...], dtype: np.dtype, *, ragged: bool = False) -> int:
    """Rows per chunk so a chunk holds about SEGMENT_CHUNK_BYTES (8 x 1 MiB images)."""
    row_bytes = max(1, int(np.prod(row_shape, dtype=np.int64)) * np.dtype(dtype).itemsize)
    cap = RAGGED_MAX_CHUNK_ROWS if ragged else SEGMENT_MAX_CHUNK_ROWS
    return int(max(1, min(cap, SEGMENT_CHUNK_BYTES // row_bytes)))


def shard_rows(chunk_rows: int, row_bytes: int) -> tuple[int, int]:
    """(rows per shard, rows per inner chunk) for a shard of about `chunk_rows` rows: inner
    chunks of about INNER_CHUNK_BYTES (at least a row), the shard a whole number of them."""
    inner = max(1, min(chunk_rows, INNER_CHUNK_BYTES // max(1, row_bytes)))
    return -(-chunk_rows // inner) * inner, inner


def reserve_path(run_path):
    return run_path.with_name(run_path.name + RESERVE_SUFFIX)
