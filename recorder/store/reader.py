"""Reads runs back: typed arrays for analysis, and every message byte for byte for replay.

Only what a flush committed is read (the `committed` attributes), so a run left behind by a
killed recorder reads the same as a finished one, up to its last flush.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import zarr
from zarr.storage import LocalStore

from recorder.contracts import (
    Annotations,
    Marker,
    Pause,
    RunSummary,
    SegmentInfo,
    StreamStats,
    StreamSummary,
)
from recorder.errors import RunNotFound, StoreError, StreamNotFound
from recorder.store import annotate, layout, location, nodes, objects
from recorder.store.column_files import ColumnFiles
from recorder.store.mapped import MappedWindow, mappable
from recorder.store.nodes import array, read_rows

_WINDOW_BYTES = 32 << 20  # read heap and segments in windows this large
_BLOCK_MESSAGES = 4096
_FRAME_ROWS = ("segment", "offset", "length")  # frame table rows that every run has


@dataclass(slots=True)
class Message:
    stream: str
    index: int
    recv_ns: int
    seq: int
    source_ns: int
    flags: int
    frames: list[memoryview]

    @property
    def rejected(self) -> bool:
        return bool(self.flags & layout.FLAG_REJECTED)


def _as_bytes_view(arr: np.ndarray, wire: np.dtype) -> memoryview:
    """The frame's bytes: in the dtype (byte order included) the message announced. zarr may
    hand a big-endian segment back in native order; converting back restores the wire bytes
    (and copies nothing when they already match)."""
    return np.ascontiguousarray(arr, dtype=wire).reshape(-1).view(np.uint8).data


def _row_bytes(segment: SegmentInfo) -> int:
    return max(1, int(np.prod(segment["shape"])) * np.dtype(segment["dtype"]).itemsize)


def _window(arr: zarr.Array, limit: int, rows: int, mapped: bool = True) -> MappedWindow | _Window:
    return MappedWindow(arr, limit) if mapped and mappable(arr) else _Window(arr, limit, rows)


@dataclass(frozen=True, slots=True)
class ArraySegment:
    """One typed segment of a stream, as the frame table's `segment` numbers it.

    Whole-row segments hold one row of `shape` per frame (ragged ones, format 2: a frame is
    `length // row bytes` rows of `shape`, its array's first axis); placed segments are
    (samples, channels) with `shape == (channels,)` and row r being sample `first_sample + r`.
    `dtype` is the wire dtype as stored (e.g. ``"<u2"``); `rows` the committed row count.
    """

    index: int
    name: str
    path: str
    dtype: str
    shape: tuple[int, ...]
    rows: int
    placed: bool = False
    first_sample: int | None = None
    ragged: bool = False


@dataclass(frozen=True, slots=True)
class FrameRows:
    """Rows of the frame table (see docs/format.md) for a range of messages, one per frame,
    with the index of the message each frame belongs to."""

    segment: np.ndarray  # layout.HEAP_SEGMENT, or an ArraySegment.index
    offset: np.ndarray  # heap byte offset, or row of the segment
    length: np.ndarray  # bytes
    column: np.ndarray  # layout.WHOLE_ROWS, or the column a placed frame fills
    message: np.ndarray  # message index

    def __len__(self) -> int:
        return len(self.segment)

    @property
    def placed(self) -> np.ndarray:
        """Per frame: does it fill cells of a placed segment (rather than whole rows)?"""
        return self.column != layout.WHOLE_ROWS


DECODED_PREFIX = "columns/"
"""How `column_names()` and `column()` name a decoded column that has a message column's name."""


class _Window:
    """A contiguous slice of a 1-D or N-D array kept in memory, refilled on a miss."""

    __slots__ = ("array", "data", "limit", "rows", "start")

    def __init__(self, array: zarr.Array, limit: int, rows: int):
        self.array, self.limit, self.rows = array, limit, max(1, rows)
        self.start = 0
        self.data: np.ndarray | None = None

    def get(self, start: int, count: int) -> np.ndarray:
        data = self.data
        if data is None or start < self.start or start + count > self.start + len(data):
            end = min(self.limit, max(start + count, start + self.rows))
            self.data = data = read_rows(self.array, start, end)
            self.start = start
        return data[start - self.start : start - self.start + count]


class _Columns:
    """The message columns and frame table rows of a stream, as block reads take them: from
    their chunk files where column_files can (a decoded chunk serves the next blocks too),
    else (or without `files`: the reference read) through zarr. One per read: a followed
    run's files change between reads."""

    __slots__ = ("arrays", "files", "folder", "group")

    def __init__(self, group: zarr.Group, files: bool = True):
        self.group = group
        store = group.store_path.store
        self.folder = (
            Path(store.root) / group.store_path.path
            if files and isinstance(store, LocalStore)
            else None
        )
        self.files: dict[str, ColumnFiles | None] = {}
        self.arrays: dict[str, zarr.Array] = {}

    def _files(self, key: str) -> ColumnFiles | None:
        if key not in self.files:
            self.files[key] = ColumnFiles.open(None if self.folder is None else self.folder / key)
        return self.files[key]

    def has(self, key: str) -> bool:
        if self._files(key) is not None:
            return True
        group, _, name = key.rpartition("/")
        return name in (nodes.subgroup(self.group, group) if group else self.group)

    def read(self, key: str, start: int, stop: int) -> np.ndarray:
        files = self._files(key)
        rows = None if files is None else files.rows(start, stop)
        if rows is not None:
            return rows
        if key not in self.arrays:
            self.arrays[key] = array(self.group, key)
        return read_rows(self.arrays[key], start, stop)


class StreamReader:
    def __init__(self, group: zarr.Group):
        self.group = group
        self.name = group.basename
        self._load()

    def refresh(self) -> None:
        """Re-read the committed counts: a run still being recorded has flushed since, and
        `messages()` then reads on past the old end (replay --follow)."""
        self.group = zarr.open_group(
            self.group.store, path=self.group.path, mode="r", zarr_format=3, use_consolidated=False
        )
        self._load()

    def _load(self) -> None:
        self.attrs = nodes.stream_attrs(self.group)
        committed = self.attrs.get("committed") or {}
        self.n_messages = int(committed.get("messages", 0))
        self.n_frames = int(committed.get("frames", 0))
        self.heap_bytes = int(committed.get("heap_bytes", 0))
        self.segment_rows: list[int] = [int(r) for r in committed.get("segment_rows", [])]
        self.segments: list[SegmentInfo] = list(self.attrs.get("segments", []))[
            : len(self.segment_rows)
        ]

    @property
    def protocol(self) -> str:
        return self.attrs.get("protocol", "raw")

    @property
    def endpoint(self) -> str:
        return self.attrs.get("endpoint", "")

    @property
    def socket_type(self) -> str:
        return self.attrs.get("socket_type", "")

    @property
    def role(self) -> str:
        return self.attrs.get("role", "")

    @property
    def stats(self) -> StreamStats:
        return cast(StreamStats, dict(self.attrs.get("stats") or {}))

    def column(self, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """A per-message column (recv_ns, seq, source_ns, flags ...), committed rows only.

        A decoded column named like a message column (an NDAttribute called `seq`) is
        `columns/<name>`, as `column_names()` lists it: the message columns keep their names."""
        stop = self.n_messages if stop is None else min(stop, self.n_messages)
        if name in layout.MESSAGE_COLUMNS:
            return read_rows(array(self.group, name), start, stop)
        columns = self.attrs.get("columns") or {}
        key = columns.get(layout.valid_text(name))
        if key is None and name.startswith(DECODED_PREFIX):
            key = columns.get(layout.valid_text(name[len(DECODED_PREFIX) :]))
        if key is None:
            raise StreamNotFound(f"stream {self.name} has no column {name!r}")
        column = array(self.group, f"columns/{key}")
        values = read_rows(column, start, stop)
        want = max(0, stop - start)
        if len(values) < want:  # a live run: the column has no value for the newest messages
            missing = column.attrs.get("missing")
            pad = np.full(want - len(values), np.nan if missing == "NaN" else missing)
            values = np.concatenate([values, pad.astype(values.dtype)])
        return values

    def column_names(self) -> list[str]:
        decoded = self.attrs.get("columns") or {}
        return [
            *layout.MESSAGE_COLUMNS,
            *(DECODED_PREFIX + n if n in layout.MESSAGE_COLUMNS else n for n in decoded),
        ]

    def array_segments(self, name: str | None = None) -> list[ArraySegment]:
        """The committed typed segments (of one array name, or all) with what they hold."""
        out = []
        for k, (seg, rows) in enumerate(zip(self.segments, self.segment_rows, strict=False)):
            if name is None or seg["name"] == name:
                first = seg.get("first_sample")
                out.append(
                    ArraySegment(
                        index=k,
                        name=seg["name"],
                        path=seg["path"],
                        dtype=seg["dtype"],
                        shape=tuple(int(n) for n in seg["shape"]),
                        rows=int(rows),
                        placed=bool(seg.get("placed", False)),
                        first_sample=None if first is None else int(first),
                        ragged=bool(seg.get("ragged", False)),
                    )
                )
        return out

    def read_segment(self, segment: int, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) of typed segment number `segment`, committed rows only."""
        if not 0 <= segment < len(self.segments):
            raise StreamNotFound(f"stream {self.name} has no typed segment {segment}")
        stop = min(stop, int(self.segment_rows[segment]))
        start = min(start, stop)
        return read_rows(array(self.group, self.segments[segment]["path"]), start, stop)

    def channel_names(self, name: str) -> list[str] | None:
        """The channel names of array `name`, when its messages carried them (Open Ephys)."""
        for seg in self.array_segments(name):
            names = array(self.group, seg.path).attrs.get("channel_names")
            if isinstance(names, list) and names:
                return [str(x) for x in names]
        return None

    def frame_rows(self, start: int = 0, stop: int | None = None) -> FrameRows:
        """The frame table rows of committed messages [start, stop), in order."""
        stop = self.n_messages if stop is None else min(stop, self.n_messages)
        start = max(0, min(start, stop))
        cols = _Columns(self.group)
        first = cols.read("first_frame", start, stop).astype(np.int64)
        count = cols.read("n_frames", start, stop).astype(np.int64)
        if not len(first):
            empty = np.zeros(0, dtype=np.int64)
            return FrameRows(empty, empty, empty, empty, empty)
        f0, f1 = int(first[0]), int(first[-1] + count[-1])
        seg, off, length, col = self._frame_table(cols, f0, f1)
        message = start + np.searchsorted(first, np.arange(f0, f1), side="right") - 1
        return FrameRows(seg, off, length, col, message)

    def _frame_table(self, cols: _Columns, f0: int, f1: int) -> tuple[np.ndarray, ...]:
        """(segment, offset, length, column) of frame rows [f0, f1).

        Runs written before the `column` row existed (early format 1) have only whole-row
        frames: their column reads as WHOLE_ROWS. This is the one place that knows it.
        """
        if cols.has("frames/column"):
            col = cols.read("frames/column", f0, f1)
        else:
            col = np.full(f1 - f0, layout.WHOLE_ROWS, dtype=np.int32)
        seg, off, length = (cols.read(f"frames/{k}", f0, f1) for k in _FRAME_ROWS)
        return seg, off, length, col

    def arrays(self, name: str | None = None) -> list[np.ndarray]:
        """Typed segments (of one array name, or all), each cut to its committed rows.

        Placed segments come as (samples, channels), row r being sample `first_sample + r`
        (see the array's attributes); cells no message filled are NaN.
        """
        out = []
        for seg, rows in zip(self.segments, self.segment_rows, strict=False):
            if name is None or seg["name"] == name:
                out.append(read_rows(array(self.group, seg["path"]), 0, rows) if rows else None)
        return [a for a in out if a is not None]

    def array_messages(self, name: str) -> list[np.ndarray]:
        """For each row-per-message segment of `name`, the message index of every row, so rows
        map to receive times, sequence numbers and train ids (a Karabo source can be missing
        from some trains). Placed segments have rows of samples and no such index."""
        out = []
        for seg, rows in zip(self.segments, self.segment_rows, strict=False):
            if seg["name"] == name and rows and "index" in seg:
                out.append(read_rows(array(self.group, seg["index"]), 0, rows))
        return out

    def message_arrays(self, name: str) -> list[tuple[int, np.ndarray]]:
        """Array `name` as each message carried it: (message index, array) in arrival order.

        A stacked row is one message's array; a ragged segment's rows are split back into the
        arrays messages carried (a message with zero rows gets an empty array)."""
        out: list[tuple[int, np.ndarray]] = []
        frames: FrameRows | None = None  # read once, for the first ragged segment
        for seg in self.array_segments(name):
            if seg.placed or not seg.rows:
                continue
            info = self.segments[seg.index]
            values = self.read_segment(seg.index, 0, seg.rows)
            index = read_rows(array(self.group, info["index"]), 0, seg.rows)
            if not seg.ragged:
                out.extend((int(m), row) for m, row in zip(index, values, strict=True))
                continue
            if frames is None and self.n_messages:
                frames = self.frame_rows()
            firsts = self._ragged_firsts(seg, frames) if frames is not None else None
            if firsts is not None:  # messages with zero rows too
                for m, (lo, n) in firsts.items():
                    out.append((m, values[lo : lo + n]))
                continue
            cuts = np.flatnonzero(np.diff(index)) + 1
            for lo, hi in zip([0, *cuts], [*cuts, len(index)], strict=True):
                out.append((int(index[lo]), values[lo:hi]))
        out.sort(key=lambda t: t[0])
        return out

    def _ragged_firsts(self, seg: ArraySegment, ft: FrameRows) -> dict[int, tuple[int, int]] | None:
        """(first row, count) per message that has this segment's frame, from the frame table
        (so a message that carried zero rows is there too)."""
        pick = (ft.segment == seg.index) & ~ft.placed
        if not pick.any():
            return None
        row_bytes = _row_bytes(self.segments[seg.index])
        return {
            int(m): (int(o), int(n) // row_bytes)
            for m, o, n in zip(ft.message[pick], ft.offset[pick], ft.length[pick], strict=True)
        }

    def array_names(self) -> list[str]:
        return sorted({seg["name"] for seg in self.segments})

    def rejects(self) -> list[tuple[int, str]]:
        n = int((self.attrs.get("committed") or {}).get("rejects", 0))
        if not n:
            return []
        idx = read_rows(array(self.group, "rejects/message"), 0, n)
        why = read_rows(array(self.group, "rejects/reason"), 0, n)
        return [(int(i), str(r)) for i, r in zip(idx, why, strict=True)]

    def messages(
        self, start: int = 0, stop: int | None = None, *, mapped: bool = True
    ) -> Iterator[Message]:
        """Messages [start, stop) in arrival order with their frames rebuilt byte for byte.

        Uncompressed heap and typed arrays in local files are read by mapping their chunk files
        and the columns from theirs (`mapped=False`: all through zarr, the reference the fast
        paths are tested against); a frame held in one chunk is then a slice of the map, sent
        by replay without a copy."""
        stop = self.n_messages if stop is None else min(stop, self.n_messages)
        if start >= stop:
            return
        heap_array = array(self.group, "heap")
        heap = _window(heap_array, self.heap_bytes, _WINDOW_BYTES, mapped)
        seg_windows = [
            _window(array(self.group, seg["path"]), rows, _WINDOW_BYTES // _row_bytes(seg), mapped)
            for seg, rows in zip(self.segments, self.segment_rows, strict=False)
        ]
        wire = [np.dtype(seg["dtype"]) for seg in self.segments]
        ragged = [bool(seg.get("ragged")) for seg in self.segments]
        row_bytes = [_row_bytes(seg) for seg in self.segments]
        # whole-row frames read as map slices: a mapped segment in the wire's byte order
        sliced = [
            isinstance(w, MappedWindow) and w.dtype == wire[k] and w.row_bytes == row_bytes[k]
            for k, w in enumerate(seg_windows)
        ]
        heap_frame = heap.frame if isinstance(heap, MappedWindow) else None
        cols = _Columns(self.group, files=mapped)
        empty = memoryview(b"")
        for b0 in range(start, stop, _BLOCK_MESSAGES):
            b1 = min(stop, b0 + _BLOCK_MESSAGES)
            recv, seq = cols.read("recv_ns", b0, b1), cols.read("seq", b0, b1)
            src, flags = cols.read("source_ns", b0, b1), cols.read("flags", b0, b1)
            first, count = cols.read("first_frame", b0, b1), cols.read("n_frames", b0, b1)
            f0 = int(first[0])
            f1 = int(first[-1] + count[-1])
            # plain ints: numpy scalars cost a conversion each time they are used
            f_seg, f_off, f_len, f_col = (a.tolist() for a in self._frame_table(cols, f0, f1))
            rows = zip(
                recv.tolist(), seq.tolist(), src.tolist(), flags.tolist(),
                (first - f0).tolist(), count.tolist(), strict=True,
            )  # fmt: skip
            for k, (t, q, sns, fl, lo, n) in enumerate(rows):
                frames: list[memoryview] = []
                for j in range(lo, lo + n):
                    seg, off, length = f_seg[j], f_off[j], f_len[j]
                    if seg == layout.HEAP_SEGMENT:
                        if not length:
                            frames.append(empty)
                        elif heap_frame is not None:
                            frames.append(heap_frame(off, length))
                        else:
                            frames.append(heap.get(off, length).data)
                    elif f_col[j] == layout.WHOLE_ROWS:  # whole row(s) of the segment
                        w = seg_windows[seg]
                        n_rows = length // row_bytes[seg] if ragged[seg] else 1
                        if sliced[seg]:
                            frames.append(cast(MappedWindow, w).frame(off, n_rows))
                        elif ragged[seg]:  # rows along the first axis
                            frames.append(_as_bytes_view(w.get(off, n_rows), wire[seg]))
                        else:
                            frames.append(_as_bytes_view(w.get(off, 1)[0], wire[seg]))
                    else:  # placed: `length` bytes down one column from row `off`
                        w = seg_windows[seg]
                        m = length // w.array.dtype.itemsize
                        frames.append(_as_bytes_view(w.get(off, m)[:, f_col[j]], wire[seg]))
                yield Message(self.name, b0 + k, t, q, sns, fl, frames)

    def index_at(self, recv_ns: int) -> int:
        """First message received at or after recv_ns."""
        return int(np.searchsorted(self.column("recv_ns"), recv_ns, side="left"))


class RunReader:
    """Context manager over one stored run: `with RunReader(path) as run: run.messages()`."""

    def __init__(self, path: Path | str):
        self.url = str(path) if location.is_url(path) else None
        """`s3://bucket/prefix/runs/RUN_ID` for a run read straight from an object store."""
        self.path = Path(str(path)[len(location.SCHEME) :] if self.url else path)
        if self.url is None and not (self.path / "zarr.json").is_file():
            raise RunNotFound(f"no run at {self.path}")
        # not the consolidated copy: annotations change after the run closed
        self.root = objects.open_run_group(self.url or self.path)
        self.attrs = nodes.run_attrs(self.root)
        if self.attrs.get("format") != layout.FORMAT_NAME:
            raise StoreError(f"{self.path} is not a zmq-recorder run")
        version = self.attrs.get("format_version")
        if version not in layout.READABLE_VERSIONS:
            raise StoreError(
                f"run {self.path.name} has format version {version}; this recorder reads "
                f"{sorted(layout.READABLE_VERSIONS)}: upgrade zmq-recorder"
            )
        self.streams: dict[str, StreamReader] = {}
        if layout.STREAMS_GROUP in self.root:
            for name, group in sorted(nodes.subgroup(self.root, layout.STREAMS_GROUP).groups()):
                if not group.attrs:  # being added: its arrays are made before its attributes,
                    continue  # so nothing of it is committed yet (a run page read it mid-way)
                self.streams[name] = StreamReader(group)

    def refresh(self) -> None:
        """Re-read the run's attributes (its status), then every stream's committed counts, in
        that order: a run seen no longer `recording` has its final counts read after."""
        root = objects.open_run_group(self.url or self.path)
        self.attrs = nodes.run_attrs(root)
        for s in self.streams.values():
            s.refresh()

    @property
    def run_id(self) -> str:
        return self.attrs["run_id"]

    @property
    def name(self) -> str:
        return self.attrs.get("name", "")

    @property
    def status(self) -> str | None:
        return self.attrs.get("status")

    @property
    def started_ns(self) -> int:
        return int(self.attrs["started_ns"])

    def markers(self) -> list[Marker]:
        """Users' events during the recording, oldest first (none in runs before 0.3)."""
        return sorted(self.attrs.get("markers") or [], key=lambda m: m["recv_ns"])

    def pauses(self) -> list[Pause]:
        """Deliberate pauses: messages received in [start_ns, end_ns) were not stored."""
        return list(self.attrs.get("pauses") or [])

    def annotations(self) -> Annotations:
        if layout.ANNOTATIONS_GROUP not in self.root:
            return {"tags": [], "notes": []}
        return nodes.annotations_of(nodes.subgroup(self.root, layout.ANNOTATIONS_GROUP))

    def stream(self, name: str) -> StreamReader:
        try:
            return self.streams[name]
        except KeyError:
            raise StreamNotFound(
                f"run {self.run_id} has no stream {name!r} (streams: {', '.join(self.streams)})"
            ) from None

    def messages(
        self,
        streams: Iterable[str] | None = None,
        start: float | None = None,
        stop: float | None = None,
    ) -> Iterator[Message]:
        """Every committed message of the chosen streams in receive-time order.

        `start`/`stop` are seconds from the run's start (as in `recorder replay --start`).
        """
        names = list(self.streams) if streams is None else list(streams)
        iters = []
        for order, name in enumerate(names):
            lo, hi = self.window(name, start, stop)
            reader = self.stream(name)
            iters.append((m.recv_ns, order, m.index, m) for m in reader.messages(lo, hi))
        for *_, msg in heapq.merge(*iters, key=lambda t: t[:3]):
            yield msg

    def window(self, name: str, start: float | None, stop: float | None) -> tuple[int, int]:
        """The messages [lo, hi) of stream `name` received in [start, stop), seconds from the
        run's start (None: that side open), as `messages()`, replay and export cut a run."""
        reader = self.stream(name)
        lo, hi = 0, reader.n_messages
        if start is not None:
            lo = reader.index_at(self.started_ns + int(start * 1e9))
        if stop is not None:
            hi = max(lo, reader.index_at(self.started_ns + int(stop * 1e9)))
        return lo, hi

    def summary(self) -> RunSummary:
        """The run as `recorder info --json` shows it and the catalog indexes it."""
        streams: list[StreamSummary] = []
        first: int | None = None
        last: int | None = None
        for s in self.streams.values():
            stats = s.stats
            rec = s.column("recv_ns", s.n_messages - 1) if s.n_messages else np.zeros(0)
            end = int(rec[-1]) if len(rec) else None
            begin = int(s.column("recv_ns", 0, 1)[0]) if s.n_messages else None
            first = begin if first is None or (begin is not None and begin < first) else first
            last = end if last is None or (end is not None and end > last) else last
            streams.append(
                {
                    "name": s.name,
                    "protocol": s.protocol,
                    "endpoint": s.endpoint,
                    "socket_type": s.socket_type,
                    "role": s.role,
                    "messages": s.n_messages,
                    "frames": s.n_frames,
                    "bytes": int(stats.get("bytes", 0)) if s.n_messages else 0,
                    "gaps": int(stats.get("gaps", 0)),
                    "drops": int(stats.get("drops", 0)),
                    "rejects": len(s.rejects()),
                    # values kept only in the message bytes: the stream hit a cap (layout.MAX_*)
                    "columns_dropped": int(stats.get("columns_dropped", 0)),
                    "segments_capped": int(stats.get("segments_capped", 0)),
                    "arrays": s.array_names(),
                    "first_recv_ns": begin,
                    "last_recv_ns": end,
                }
            )
        ann = self.annotations()
        a = self.attrs
        ended = a.get("ended_ns") or last
        return {
            "run_id": a["run_id"],
            "name": ann.get("name", a.get("name", "")),  # a rename is an annotation
            "status": a.get("status"),
            "error": a.get("error"),
            "format_version": a.get("format_version"),
            "started_ns": a["started_ns"],
            "ended_ns": ended,
            "duration_s": ((ended - a["started_ns"]) / 1e9) if ended else 0.0,
            "host": a.get("host"),
            "pid": a.get("pid"),
            "meta": a.get("meta") or {},
            "tags": list(ann.get("tags", [])),
            "notes": annotate.note_items(ann.get("notes", [])),
            "messages": sum(s["messages"] for s in streams),
            "bytes": sum(s["bytes"] for s in streams),
            "gaps": sum(s["gaps"] for s in streams),
            "drops": sum(s["drops"] for s in streams),
            "rejects": sum(s["rejects"] for s in streams),
            "streams": streams,
            "path": self.url or str(self.path),
            "session": ann.get("session"),
        }

    def close(self) -> None:
        pass

    def __enter__(self) -> RunReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
